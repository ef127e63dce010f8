package agent

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/protocol"
)

// loadNodeID returns the node ID kept in dataDir, creating it on first
// start: name if given, else the host name plus a random suffix. The ID
// never changes afterwards, so a restarted agent is the same node.
func loadNodeID(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !protocol.ValidID(id) {
			return "", fmt.Errorf("node ID %q in %s is not valid", id, path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := name
	if id == "" {
		host, _ := os.Hostname()
		var suffix [2]byte
		rand.Read(suffix[:])
		id = sanitizeID(host) + "-" + hex.EncodeToString(suffix[:])
	}
	if !protocol.ValidID(id) {
		return "", fmt.Errorf("node name %q: use letters, digits, '-' and '_' (no dots or spaces)", id)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("save node ID: %w", err)
	}
	return id, nil
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}

// Facts describe the machine an agent runs on, gathered at start.
type Facts struct {
	Hostname  string   `json:"hostname"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	CPUs      int      `json:"cpus"`
	MemoryMiB int64    `json:"memoryMiB"`
	Addresses []string `json:"addresses"`
}

// GatherFacts reads the machine's facts; what cannot be read stays empty.
func GatherFacts() Facts {
	f := Facts{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	f.Hostname, _ = os.Hostname()
	f.MemoryMiB = memTotalMiB("/proc/meminfo")
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
				f.Addresses = append(f.Addresses, ipn.IP.String())
			}
		}
	}
	return f
}

func memTotalMiB(path string) int64 {
	fh, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb / 1024
		}
	}
	return 0
}
