package sshpush

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// defaultSumCmd defines the shell function drove_sum, which prints the
// sha256 (hex) of the file "$1".
const defaultSumCmd = `drove_sum() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum < "$1"; else shasum -a 256 < "$1"; fi | cut -c1-64
}`

// Upload streams size bytes from r into remotePath with the given mode,
// as root. The bytes go to a temporary file in the same directory, whose
// length and sha256 are checked before it is renamed over remotePath: an
// interrupted or corrupted upload leaves remotePath as it was. A checksum
// difference matches ErrChecksumMismatch.
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, remotePath string, mode os.FileMode) error {
	dest := c.target.Dest()
	if !path.IsAbs(remotePath) || path.Clean(remotePath) != remotePath || remotePath == "/" {
		return fmt.Errorf("ssh %s: upload to %q: remote path must be absolute and clean", dest, remotePath)
	}
	if size < 0 {
		return fmt.Errorf("ssh %s: upload to %s: negative size %d", dest, remotePath, size)
	}
	h := sha256.New()
	src := &countingReader{r: io.TeeReader(io.LimitReader(r, size), h)}
	script := c.sumCmd + "\n" + receiveScript(remotePath, size, mode)
	cmd, in := c.privileged(script, src)
	res, err := c.exec(ctx, cmd, in, true)
	if res.stdinErr != nil {
		return fmt.Errorf("ssh %s: upload to %s: read local data: %w", dest, remotePath, res.stdinErr)
	}
	if err == nil && src.n != size {
		// The remote script refuses a short file too; this names the cause.
		return fmt.Errorf("ssh %s: upload to %s: local data ended after %d of %d bytes", dest, remotePath, src.n, size)
	}
	if err != nil {
		return fmt.Errorf("upload to %s: %w", remotePath, c.runError("receive file", res, err))
	}
	rep := parseReport(res.stdout)
	tmp, got := rep["tmp"], rep["sha256"]
	if !strings.HasPrefix(tmp, path.Dir(remotePath)+"/") || strings.ContainsAny(tmp, "\n'") {
		return fmt.Errorf("ssh %s: upload to %s: the remote side reported no temporary file (output %q)", dest, remotePath, res.stdout)
	}
	if want := hex.EncodeToString(h.Sum(nil)); got != want {
		if _, _, err := c.Run(ctx, "rm -f "+shellQuote(tmp), nil); err != nil {
			c.log.Warn("remove corrupt upload", "dest", dest, "file", tmp, "err", err)
		}
		return fmt.Errorf("ssh %s: upload to %s: remote sha256 %q, sent %s: %w", dest, remotePath, got, want, ErrChecksumMismatch)
	}
	if _, _, err := c.Run(ctx, "mv -f "+shellQuote(tmp)+" "+shellQuote(remotePath), nil); err != nil {
		c.Run(context.WithoutCancel(ctx), "rm -f "+shellQuote(tmp), nil)
		return fmt.Errorf("upload to %s: rename into place: %w", remotePath, err)
	}
	c.log.Debug("uploaded", "dest", dest, "file", remotePath, "bytes", size)
	return nil
}

// receiveScript writes its input to a temporary file beside dst, checks
// the length, syncs it and reports "drove-tmp=" and "drove-sha256=".
// On any failure, or when killed, it removes the temporary file.
func receiveScript(dst string, size int64, mode os.FileMode) string {
	return strings.Join([]string{
		"set -e",
		"dst=" + shellQuote(dst),
		`dir=$(dirname "$dst")`,
		`mkdir -p "$dir"`,
		`tmp=$(mktemp "$dir/.$(basename "$dst").drove-XXXXXX")`,
		`trap 'rm -f "$tmp"' EXIT`,
		`trap 'exit 1' HUP INT TERM PIPE`,
		`cat > "$tmp"`,
		`n=$(wc -c < "$tmp" | tr -d ' ')`,
		`if [ "$n" != ` + strconv.FormatInt(size, 10) + ` ]; then echo "received $n of ` +
			strconv.FormatInt(size, 10) + ` bytes" >&2; exit 3; fi`,
		"chmod " + strconv.FormatUint(uint64(mode.Perm()), 8) + ` "$tmp"`,
		`sync "$tmp" 2>/dev/null || sync`,
		`sum=$(drove_sum "$tmp")`,
		`trap - EXIT`,
		`echo "drove-tmp=$tmp"`,
		`echo "drove-sha256=$sum"`,
	}, "\n")
}

// RemoteSHA256 returns the hex sha256 of a remote file, or "" when there
// is no such regular file.
func (c *Client) RemoteSHA256(ctx context.Context, remotePath string) (string, error) {
	script := c.sumCmd + "\n" + `if [ -f "$1" ]; then echo "drove-sha256=$(drove_sum "$1")"; fi`
	out, _, err := c.Run(ctx, "sh -c "+shellQuote(script)+" drove-sum "+shellQuote(remotePath), nil)
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", remotePath, err)
	}
	return parseReport(out)["sha256"], nil
}

// parseReport reads the "drove-KEY=VALUE" lines a remote script prints;
// other lines are ignored, a later line wins.
func parseReport(out []byte) map[string]string {
	rep := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSuffix(line, "\r")
		rest, ok := strings.CutPrefix(line, "drove-")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" {
			continue
		}
		rep[k] = v
	}
	return rep
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
