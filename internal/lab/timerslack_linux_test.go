package lab

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStartWithTimerSlack(t *testing.T) {
	own, err := os.ReadFile("/proc/self/timerslack_ns")
	if err != nil {
		t.Skipf("no timer slack in /proc here: %v", err)
	}
	for _, tc := range []struct {
		slack time.Duration
		want  string
	}{
		{3 * time.Millisecond, "3000000"},
		{0, strings.TrimSpace(string(own))}, // this process's
	} {
		cmd := exec.Command("sleep", "60")
		if err := startWithTimerSlack(cmd, tc.slack); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/timerslack_ns")
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != tc.want {
			t.Errorf("slack %v: the child's timer slack is %s ns, want %s", tc.slack, got, tc.want)
		}
	}
	if b, _ := os.ReadFile("/proc/self/timerslack_ns"); string(b) != string(own) {
		t.Errorf("this process's timer slack changed from %s to %s", own, b)
	}
}
