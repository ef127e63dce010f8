package lab

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// alive, asked right after a start, sees the process as the lab's: a
// process still inside execve reads as an empty command line (about one
// start in eight here), which alive once took for a dead one.
func TestAliveRightAfterStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node-data")
	for i := range 200 {
		// $0 carries the marker; "; :" keeps sh from exec'ing sleep.
		cmd := exec.Command("/bin/sh", "-c", "sleep 30; :", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n := &Node{PID: cmd.Process.Pid, DataDir: dir}
		ok := n.alive()
		cmd.Process.Kill()
		cmd.Wait()
		if !ok {
			t.Fatalf("start %d: alive() = false for a running process whose command line names %s", i+1, dir)
		}
		if n.alive() {
			t.Fatalf("start %d: alive() = true for a reaped process", i+1)
		}
	}
}
