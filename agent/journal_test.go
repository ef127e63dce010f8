package agent

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
	bolt "go.etcd.io/bbolt"
)

func rawRecord(t *testing.T, j *Journal, id string) []byte {
	t.Helper()
	var raw []byte
	err := j.db.View(func(tx *bolt.Tx) error {
		raw = append([]byte(nil), tx.Bucket(bucketSteps).Get([]byte(id))...)
		return nil
	})
	if err != nil || raw == nil {
		t.Fatalf("raw record %q: %v", id, err)
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
	path := filepath.Join(t.TempDir(), "sub", "journal.db")
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
	path := filepath.Join(t.TempDir(), "journal.db")
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
	path := filepath.Join(t.TempDir(), "journal.db")
	j, _ := openJournal(t, path)
	if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, u64(99)) }); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, _, err := OpenJournal(path); !errors.Is(err, ErrJournalVersion) {
		t.Fatalf("open of a version 99 journal: %v", err)
	}
}

func TestJournalRefusesCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, _ := openJournal(t, path)
	if err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSteps).Put([]byte("x"), []byte("{not json")) }); err != nil {
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
