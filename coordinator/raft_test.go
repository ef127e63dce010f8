package coordinator

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// A follower whose last entries a new leader does not have clears them
// from its log (raft's "clearing log suffix"); the store must then still
// open and read at the next start. raft-wal v0.4.0 marked the tail
// segment sealed without writing its index, and the agent panicked at
// its next start with "sealed segment has no index block" (a leader
// killed with -9 in TestExactlyOnceAcrossLeaderKills, in CI).
func TestLogStoreReopensAfterTailTruncation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	log := slog.New(slog.DiscardHandler)
	s, err := openLogStore(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(5, 5); err != nil {
		t.Fatal(err)
	}
	// kill -9: the files as they are, with the store still open.
	crashed := filepath.Join(t.TempDir(), "wal")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = openLogStore(crashed, log)
	if err != nil {
		t.Fatalf("reopen after a tail truncation: %v", err)
	}
	defer s.Close()
	for i := uint64(1); i <= 4; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || l.Data[0] != byte(i) {
			t.Fatalf("entry %d after reopening: %v %+v", i, err, l)
		}
	}
	if last, err := s.LastIndex(); err != nil || last != 4 {
		t.Fatalf("last index %d %v, want 4", last, err)
	}
	// The log goes on from there.
	if err := s.StoreLog(&raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte{50}}); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(5, &l); err != nil || l.Term != 2 {
		t.Fatalf("entry 5 after the new append: %v %+v", err, l)
	}
}

// unreadableLog is an in-memory raft log whose entry bad cannot be read,
// as a damaged log file leaves it.
type unreadableLog struct {
	*raft.InmemStore
	bad uint64
}

func (u unreadableLog) GetLog(index uint64, l *raft.Log) error {
	if index == u.bad {
		return errors.New("sealed segment has no index block")
	}
	return u.InmemStore.GetLog(index, l)
}

// A log entry raft cannot read at start is an error that says so, not a
// panic that kills the agent.
func TestNewRaftUnreadableLogIsAnError(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	store := raft.NewInmemStore()
	var logs []*raft.Log
	for i := uint64(1); i <= 3; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	r, err := newRaft(raftConfig("c1", true, log), NewFSM(log), unreadableLog{store, 2}, store, raft.NewInmemSnapshotStore(), trans)
	if err == nil || r != nil || !strings.Contains(err.Error(), "read the raft log: sealed segment has no index block") {
		t.Fatalf("newRaft = %v, %v; want an error that names the unreadable log", r, err)
	}
}
