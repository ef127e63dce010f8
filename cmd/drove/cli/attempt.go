package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/protocol"
)

// The last run from this machine is kept beside the client context: an
// install that fails records no revision in the cluster, and `drove delete`
// still has to know which hosts to clean.

func attemptPath(g *Globals) string { return filepath.Join(g.DataDir, "last-run.json") }

// saveAttempt records what a run is about to apply.
func saveAttempt(g *Globals, img *clusterImage, rt string, clusterfile []byte) error {
	rev := protocol.ClusterRevision{Clusterfile: string(clusterfile), Image: img.Ref, ImageDigest: img.Digest, Runtime: rt}
	b, err := json.MarshalIndent(rev, "", "  ")
	if err != nil {
		return fmt.Errorf("record this run: %w", err)
	}
	if err := os.MkdirAll(g.DataDir, 0o700); err != nil {
		return fmt.Errorf("record this run: %w", err)
	}
	if err := atomicfile.WriteFile(attemptPath(g), b, 0o600); err != nil {
		return fmt.Errorf("record this run: %w", err)
	}
	return nil
}

// loadAttempt reads the last run's record.
func loadAttempt(g *Globals) (*protocol.ClusterRevision, error) {
	b, err := os.ReadFile(attemptPath(g))
	if err != nil {
		return nil, err
	}
	var rev protocol.ClusterRevision
	if err := json.Unmarshal(b, &rev); err != nil {
		return nil, fmt.Errorf("read %s: %w", attemptPath(g), err)
	}
	return &rev, nil
}

// removeAttempt forgets the last run (the cluster is gone).
func removeAttempt(g *Globals) { os.Remove(attemptPath(g)) }
