package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/agent"
	"github.com/drove-project/drove/coordinator/netinstall"
	"github.com/drove-project/drove/internal/clusterauth"
)

// startNetInstall starts a coordinator's install API (GET /install.sh,
// GET /dl/drove-<os>-<arch>) on --api-port, unless it is 0. The returned
// stop ends it and waits until it has.
func startNetInstall(ctx context.Context, g *Globals, o *agentOptions, a *agent.Agent) (stop func(), err error) {
	if o.APIPort == 0 {
		return func() {}, nil
	}
	srv, err := netinstall.New(netinstall.Config{
		Token:     o.Token,
		Listen:    net.JoinHostPort(o.Bind, strconv.Itoa(o.APIPort)),
		Hosts:     installHosts(o.Bind, o.Advertise),
		Members:   a.Gossip().Members,
		APIPort:   o.APIPort,
		BinaryDir: filepath.Join(o.DataDir, "dl"),
		Log:       g.Log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			g.Log.Error("install API stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// installHosts are the names the install API's certificate is for: the
// advertised and bound addresses (every interface's when bound to all),
// the host name and loopback.
func installHosts(bind, advertise string) []string {
	hosts := []string{advertise}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, bind)
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	if h, err := os.Hostname(); err == nil && clusterauth.ValidDNSName(h) {
		hosts = append(hosts, h)
	}
	hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	var out []string
	for _, h := range hosts {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// newTokenCACmd is `drove token ca`: the cluster CA to pin.
func newTokenCACmd(g *Globals) *cobra.Command {
	var token, tokenFile string
	var fingerprint bool
	cmd := &cobra.Command{
		Use:   "ca (--token-file FILE | --token T)",
		Short: "Print the cluster CA certificate that coordinators' install API uses",
		Long: `ca prints the cluster's CA certificate (PEM, after a comment line with its
SHA-256 fingerprint). Every coordinator derives the same CA from the cluster
token and serves its install API (https://COORDINATOR:7951) with a
certificate signed by it, so this file is all a new machine needs to trust
the one-line network install:

  drove token ca --token-file token > ca.pem
  curl -fsSL --cacert ca.pem https://COORDINATOR:7951/install.sh | sudo sh -s -- --token-file token

Without ca.pem, fetch install.sh with curl -k and compare the fingerprint
in the script (openssl x509 -noout -fingerprint -sha256) with --fingerprint
here: the script itself pins the CA for everything it downloads.`,
		Example: `  drove token ca --token-file /etc/drove/token > ca.pem
  drove token ca --token-file /etc/drove/token --fingerprint`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := netinstallToken(token, tokenFile)
			if err != nil {
				return err
			}
			pem, err := clusterauth.CACertPEM(t)
			if err != nil {
				return err
			}
			fp, err := clusterauth.CAFingerprint(t)
			if err != nil {
				return err
			}
			if fingerprint {
				fmt.Fprintln(g.Out, fp)
				return nil
			}
			// PEM readers (curl, openssl, Go) skip text before BEGIN.
			fmt.Fprintf(g.Out, "# drove cluster CA, sha256 fingerprint %s\n%s", fp, pem)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tokenFile, "token-file", "", "file holding the cluster token")
	f.StringVar(&token, "token", "", "the cluster token (prefer --token-file; env DROVE_TOKEN)")
	f.BoolVar(&fingerprint, "fingerprint", false, "print only the SHA-256 fingerprint (as openssl x509 -fingerprint -sha256 does)")
	return cmd
}

// netinstallToken is the token from --token-file, else --token, else
// DROVE_TOKEN, checked.
func netinstallToken(token, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		token = string(b)
	}
	if strings.TrimSpace(token) == "" {
		token = os.Getenv("DROVE_TOKEN")
	}
	if strings.TrimSpace(token) == "" {
		return "", usageErrorf("no cluster token: pass --token-file FILE (or --token, or set DROVE_TOKEN)")
	}
	t, err := clusterauth.CheckToken(token)
	if err != nil {
		if file != "" {
			return "", usageErrorf("token file %s: %v", file, err)
		}
		return "", usageErrorf("--token: %v", err)
	}
	return t, nil
}
