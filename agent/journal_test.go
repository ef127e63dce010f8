package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

func rawRecord(t *testing.T, j *Journal, id string) []byte {
	t.Helper()
	j.mu.RLock()
	sp, ok := j.index[id]
	j.mu.RUnlock()
	if !ok {
		t.Fatalf("no record %q", id)
	}
	raw := make([]byte, sp.n)
	if _, err := j.f.ReadAt(raw, sp.off); err != nil {
		t.Fatal(err)
	}
	return raw
}

func openJournal(t *testing.T, path string) (*Journal, []string) {
	t.Helper()
	j, interrupted, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, interrupted
}

func TestJournalRecordsAndInterruptsOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "journal.log")
	j, interrupted := openJournal(t, path)
	if len(interrupted) != 0 {
		t.Fatalf("new journal reports interrupted steps %v", interrupted)
	}
	if _, err := j.Get("a"); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("Get of a missing step: %v", err)
	}
	started := time.UnixMilli(1700000000000)
	for _, id := range []string{"a", "b", "c"} {
		if err := j.Begin(id, 2, 7, started); err != nil {
			t.Fatal(err)
		}
	}
	res := &protocol.StepResult{StepID: "b", Node: "n1", Attempt: 2, State: protocol.StateSucceeded, Output: "ok\n",
		Outputs: map[string]string{"k": "v"}, Replayed: true}
	if err := j.Finish("b", res, started.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get("b")
	if err != nil {
		t.Fatal(err)
	}
	want := Record{StepID: "b", State: protocol.StateSucceeded, Attempt: 2, Term: 7, Started: 1700000000000, Finished: 1700000001000,
		Result: &protocol.StepResult{StepID: "b", Node: "n1", Attempt: 2, State: protocol.StateSucceeded, Output: "ok\n", Outputs: map[string]string{"k": "v"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record\n got %+v\nwant %+v", got, want)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, interrupted = openJournal(t, path)
	sort.Strings(interrupted)
	if !reflect.DeepEqual(interrupted, []string{"a", "c"}) {
		t.Fatalf("interrupted %v, want [a c]", interrupted)
	}
	for id, state := range map[string]string{"a": protocol.StateInterrupted, "b": protocol.StateSucceeded, "c": protocol.StateInterrupted} {
		r, err := j.Get(id)
		if err != nil || r.State != state || r.Attempt != 2 || r.Term != 7 {
			t.Errorf("%s after reopen: %+v %v", id, r, err)
		}
	}
}

func TestJournalTermFencing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	j, _ := openJournal(t, path)
	for _, c := range []struct {
		term    uint64
		ok      bool
		highest uint64
	}{
		{3, true, 3}, {3, true, 3}, {2, false, 3}, {8, true, 8}, {0, false, 8}, {7, false, 8},
	} {
		ok, highest, err := j.ObserveTerm(c.term)
		if err != nil || ok != c.ok || highest != c.highest {
			t.Fatalf("ObserveTerm(%d) = %v %d %v, want %v %d", c.term, ok, highest, err, c.ok, c.highest)
		}
	}
	j.Close()
	j, _ = openJournal(t, path)
	if term, err := j.Term(); err != nil || term != 8 {
		t.Fatalf("term after reopen %d %v", term, err)
	}
}

func TestJournalRefusesUnknownVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	j, _ := openJournal(t, path)
	j.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0, 0, 0, 99}, 8); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := readFile(t, path)
	if _, _, err := OpenJournal(path); !errors.Is(err, ErrJournalVersion) {
		t.Fatalf("open of a version 99 journal: %v", err)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Fatal("a refused open changed the file")
	}
}

func TestJournalRefusesCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	j, _ := openJournal(t, path)
	// A whole entry (its checksum holds) whose record does not decode: a
	// bug or another program, not a torn write.
	if err := j.append("x", []byte("R{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Get("x"); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("Get of a corrupt record: %v", err)
	}
	j.Close()
	if _, _, err := OpenJournal(path); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("open with a corrupt record: %v", err)
	}
}

// A crash can tear the last group of entries: Open keeps every whole entry
// before it, reports the torn bytes, and the log goes on cleanly after it.
func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	j, _ := openJournal(t, path)
	started := time.UnixMilli(1700000000000)
	for _, id := range []string{"a", "b"} {
		if err := j.Begin(id, 1, 1, started); err != nil {
			t.Fatal(err)
		}
	}
	end := j.end
	if err := j.Finish("b", &protocol.StepResult{StepID: "b", Attempt: 1, State: protocol.StateSucceeded}, started); err != nil {
		t.Fatal(err)
	}
	whole := j.end
	j.Close()
	// Tear b's result: keep its header and half its payload.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cut := end + (whole-end)/2
	if _, err := f.WriteAt(make([]byte, whole-cut), cut); err != nil {
		t.Fatal(err)
	}
	f.Close()

	j, interrupted := openJournal(t, path)
	sort.Strings(interrupted)
	if !reflect.DeepEqual(interrupted, []string{"a", "b"}) {
		t.Fatalf("interrupted %v, want [a b] (b's result was torn off)", interrupted)
	}
	if j.Ignored != cut-end {
		t.Fatalf("ignored %d bytes, want %d", j.Ignored, cut-end)
	}
	if err := j.Finish("b", &protocol.StepResult{StepID: "b", Attempt: 2, State: protocol.StateSucceeded}, started); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j, interrupted = openJournal(t, path)
	if j.Ignored != 0 || !reflect.DeepEqual(interrupted, []string(nil)) {
		t.Fatalf("after a clean stop: ignored %d, interrupted %v", j.Ignored, interrupted)
	}
	if r, err := j.Get("b"); err != nil || r.State != protocol.StateSucceeded || r.Attempt != 2 {
		t.Fatalf("b: %+v %v", r, err)
	}
}

// Reopening compacts: rewriting one step many times leaves one record.
func TestJournalCompactsOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	j, _ := openJournal(t, path)
	for i := range 200 {
		if err := j.Begin("same", i, 1, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	grown := j.end
	j.Close()
	j, _ = openJournal(t, path)
	if j.end*50 > grown {
		t.Fatalf("log is %d bytes after compaction, %d before", j.end, grown)
	}
	if r, err := j.Get("same"); err != nil || r.Attempt != 199 || r.State != protocol.StateInterrupted {
		t.Fatalf("record after compaction: %+v %v", r, err)
	}
}

func TestJournalOneProcessAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.log")
	openJournal(t, path)
	if _, _, err := OpenJournal(path); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: %v", err)
	}
}

func TestJournalClosedRefusesWrites(t *testing.T) {
	j, _ := openJournal(t, filepath.Join(t.TempDir(), "journal.log"))
	j.Close()
	if err := j.Begin("a", 1, 1, time.Now()); !errors.Is(err, errJournalClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzJournalOpen: any file either opens (and then works) or is refused
// with an error and left as it was.
func FuzzJournalOpen(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.log")
	j, _, err := OpenJournal(seed)
	if err != nil {
		f.Fatal(err)
	}
	j.ObserveTerm(3)
	j.Begin("a", 1, 3, time.UnixMilli(1))
	j.Finish("a", &protocol.StepResult{StepID: "a", Attempt: 1, State: protocol.StateSucceeded, Output: "hi"}, time.UnixMilli(2))
	j.Begin("b", 1, 3, time.UnixMilli(3))
	j.Close()
	b, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.TrimRight(b, "\x00"))
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "journal.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, _, err := OpenJournal(path)
		if err != nil {
			if !bytes.Equal(readFile(t, path), data) {
				t.Fatal("a refused open changed the file")
			}
			return
		}
		defer j.Close()
		if err := j.Begin("new", 1, 1, time.UnixMilli(1)); err != nil {
			t.Fatal(err)
		}
		if r, err := j.Get("new"); err != nil || r.State != protocol.StateRunning {
			t.Fatalf("%+v %v", r, err)
		}
	})
}

func TestDecodeRecord(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"stepID":"a","state":"running","attempt":1}`, true},
		{`{"stepID":"a","state":"interrupted"}`, true},
		{`{"stepID":"a","state":"succeeded","result":{"stepID":"a","state":"succeeded"}}`, true},
		{`{"stepID":"a","state":"succeeded"}`, false},
		{`{"stepID":"a","state":"failed"}`, false},
		{`{"stepID":"a","state":"rejected"}`, false},
		{`{"state":"running"}`, false},
		{`{"stepID":"a","state":"running","attempt":"x"}`, false},
		{``, false},
	} {
		_, err := decodeRecord([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("decodeRecord(%s): %v", c.in, err)
		}
		if err != nil && !errors.Is(err, ErrBadRecord) {
			t.Errorf("decodeRecord(%s): %v is not ErrBadRecord", c.in, err)
		}
	}
}

// FuzzDecodeRecord: whatever decodes has a known state and survives a
// round trip unchanged.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"stepID":"a","state":"running","attempt":1,"term":2,"started":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		switch r.State {
		case protocol.StateRunning, protocol.StateInterrupted, protocol.StateSucceeded, protocol.StateFailed:
		default:
			t.Fatalf("decoded state %q", r.State)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		again2, err := json.Marshal(r2)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(again2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", again, again2)
		}
	})
}
