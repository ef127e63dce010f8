package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// clientContext is what `drove lab up` (or an operator) writes so that
// later commands find the cluster: <data-dir>/context.json.
type clientContext struct {
	Servers []string `json:"servers"` // NATS URLs of coordinators
	Token   string   `json:"token"`
	Lab     string   `json:"lab,omitempty"` // lab directory, if this is a lab
}

func contextPath(g *Globals) string { return filepath.Join(g.DataDir, "context.json") }

func readContext(g *Globals) (clientContext, error) {
	var c clientContext
	b, err := os.ReadFile(contextPath(g))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read %s: %w", contextPath(g), err)
	}
	return c, nil
}

func writeContext(g *Globals, c clientContext) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(contextPath(g), b, 0o600)
}

// clientFlags say how a command reaches the cluster: --server, else
// DROVE_SERVER, else the context file; the token likewise.
type clientFlags struct {
	Server    string
	TokenFile string
	Timeout   time.Duration
}

func (c *clientFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.Server, "server", "", "coordinator NATS URL(s), comma-separated (env DROVE_SERVER; default from the context \"drove lab up\" writes)")
	f.StringVar(&c.TokenFile, "token-file", "", "file holding the cluster token (env DROVE_TOKEN; default from the context)")
	f.DurationVar(&c.Timeout, "timeout", 30*time.Second, "how long to wait for the coordinators")
}

func (c *clientFlags) connect(g *Globals) (*nats.Conn, error) {
	servers, token := c.Server, ""
	if servers == "" {
		servers = os.Getenv("DROVE_SERVER")
	}
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = os.Getenv("DROVE_TOKEN")
	}
	if servers == "" || token == "" {
		ctx, err := readContext(g)
		if err != nil && servers == "" {
			return nil, usageErrorf("no cluster to talk to: pass --server URL, set DROVE_SERVER, or start one with `drove lab up`")
		}
		if servers == "" {
			servers = strings.Join(ctx.Servers, ",")
		}
		if token == "" {
			token = ctx.Token
		}
	}
	if token == "" {
		return nil, usageErrorf("no cluster token: pass --token-file or set DROVE_TOKEN")
	}
	user, pass := clusterauth.NATSAgent(token)
	nc, err := nats.Connect(servers, nats.UserInfo(user, pass), nats.Name("drove-cli"), nats.Timeout(5*time.Second))
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("connect to %s: the coordinators refused the token", servers)
		}
		return nil, fmt.Errorf("connect to %s: %w", servers, err)
	}
	return nc, nil
}

// attemptTimeout bounds one API request attempt; a coordinator answers in
// milliseconds, or with no_leader at once during an election.
const attemptTimeout = 3 * time.Second

// request connects, sends one API request (see call) and disconnects.
func (c *clientFlags) request(ctx context.Context, g *Globals, req, into protocol.Message) error {
	nc, err := c.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	return c.call(ctx, nc, req, into)
}

// call sends one API request and decodes the reply into into, retrying
// while the cluster has no leader (an election takes about a second) and
// when an attempt goes unanswered: NATS hands each request to one
// coordinator of the queue group, which may be cut off from the others
// until the servers notice. Requests are idempotent (a plan carries its
// ID), so asking again is safe.
func (c *clientFlags) call(ctx context.Context, nc *nats.Conn, req, into protocol.Message) error {
	b, err := protocol.Encode(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err := nc.RequestWithContext(rctx, protocol.APISubject, b)
		rcancel()
		if err == nil {
			err = protocol.DecodeAs(resp.Data, into)
			var pe *protocol.Error
			if err == nil || !errors.As(err, &pe) || (pe.Code != protocol.CodeNoLeader && pe.Code != protocol.CodeNotLeader) {
				return err
			}
		} else if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("ask the coordinators: %w", err)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("ask the coordinators: %w", err)
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
