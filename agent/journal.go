package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drove-project/drove/protocol"
	bolt "go.etcd.io/bbolt"
)

// The journal's layout in its bbolt file. Bump journalVersion when a record
// changes incompatibly; Open refuses a file written by a newer layout.
var (
	bucketSteps = []byte("steps") // StepID → JSON Record
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version") // uint64, big endian
	keyTerm     = []byte("term")    // uint64, big endian: the highest term seen
)

const journalVersion = 1

// Journal errors, matched with errors.Is.
var (
	ErrJournalVersion = errors.New("journal written by an unknown format version")
	ErrBadRecord      = errors.New("malformed journal record")
	ErrNoRecord       = errors.New("no journal record for step")
)

// Record is what the journal holds for one step: one record per StepID,
// overwritten in place, so a step never takes more than one record's space.
// While the step runs, State is running and Result is nil; afterwards State
// is the result's State and Result holds the (bounded) result.
type Record struct {
	StepID   string               `json:"stepID"`
	State    string               `json:"state"` // running, succeeded, failed, interrupted
	Attempt  int                  `json:"attempt"`
	Term     uint64               `json:"term"`
	Started  int64                `json:"started"`            // unix ms
	Finished int64                `json:"finished,omitempty"` // unix ms
	Result   *protocol.StepResult `json:"result,omitempty"`
}

// Journal is the agent's durable record of the steps it ran and the highest
// leader term it has seen. Every write is one bbolt transaction, fsynced on
// commit, so a record that Begin or Finish returned for survives a crash.
type Journal struct {
	db *bolt.DB

	termMu  sync.Mutex
	highest uint64 // cache of the stored highest term (under termMu)
}

// OpenJournal opens (creating if needed) the journal at path. Records left
// running by an agent that died mid-step become interrupted; their IDs are
// returned. A journal another process holds open fails after a short wait.
func OpenJournal(path string) (*Journal, []string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	// Writes go through db.Batch: concurrent steps share one transaction
	// and one fsync, each still durable before its call returns.
	db.MaxBatchDelay = 2 * time.Millisecond
	var interrupted []string
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil {
			if len(v) != 8 || binary.BigEndian.Uint64(v) != journalVersion {
				return fmt.Errorf("%w (%x; this drove writes %d)", ErrJournalVersion, v, journalVersion)
			}
		} else if err := meta.Put(keyVersion, u64(journalVersion)); err != nil {
			return err
		}
		steps, err := tx.CreateBucketIfNotExists(bucketSteps)
		if err != nil {
			return err
		}
		// Collect first: bbolt forbids Put while a cursor walks the bucket.
		var fix []Record
		err = steps.ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("step %q: %w", k, err)
			}
			if r.State == protocol.StateRunning {
				fix = append(fix, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range fix {
			r.State = protocol.StateInterrupted
			if err := putRecord(steps, r); err != nil {
				return err
			}
			interrupted = append(interrupted, r.StepID)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{db: db}
	if j.highest, err = j.Term(); err != nil {
		db.Close()
		return nil, nil, err
	}
	return j, interrupted, nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	return nil
}

// Get returns the record of step id, or ErrNoRecord.
func (j *Journal) Get(id string) (Record, error) {
	var r Record
	err := j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSteps).Get([]byte(id))
		if v == nil {
			return ErrNoRecord
		}
		var err error
		r, err = decodeRecord(v)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("read journal record %q: %w", id, err)
	}
	return r, nil
}

// Begin records that step id starts running now, as attempt under term,
// replacing any earlier record of it. It returns after the record is on disk.
func (j *Journal) Begin(id string, attempt int, term uint64, started time.Time) error {
	r := Record{StepID: id, State: protocol.StateRunning, Attempt: attempt, Term: term, Started: started.UnixMilli()}
	if err := j.put(r); err != nil {
		return fmt.Errorf("journal start of step %q: %w", id, err)
	}
	return nil
}

// Finish records the result of step id (its State becomes the record's),
// keeping the Started time and term Begin wrote.
func (j *Journal) Finish(id string, res *protocol.StepResult, finished time.Time) error {
	err := j.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSteps)
		r := Record{StepID: id, Attempt: res.Attempt}
		if v := b.Get([]byte(id)); v != nil {
			if old, err := decodeRecord(v); err == nil {
				r = old
			}
		}
		stored := *res
		stored.Replayed = false
		r.State, r.Attempt, r.Finished, r.Result = res.State, res.Attempt, finished.UnixMilli(), &stored
		return putRecord(b, r)
	})
	if err != nil {
		return fmt.Errorf("journal result of step %q: %w", id, err)
	}
	return nil
}

// ObserveTerm fences out old leaders: a term lower than the highest seen is
// refused (ok false, with the highest term); an equal or higher one is
// accepted, and a higher one is stored durably before ObserveTerm returns.
func (j *Journal) ObserveTerm(term uint64) (ok bool, highest uint64, err error) {
	j.termMu.Lock()
	defer j.termMu.Unlock()
	if term < j.highest {
		return false, j.highest, nil
	}
	if term == j.highest {
		return true, term, nil // nothing to write: the common case
	}
	err = j.db.Batch(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if termOf(meta) >= term {
			return nil
		}
		return meta.Put(keyTerm, u64(term))
	})
	if err != nil {
		return false, 0, fmt.Errorf("journal term %d: %w", term, err)
	}
	j.highest = term
	return true, term, nil
}

// Term returns the highest leader term the journal has seen (0 if none).
func (j *Journal) Term() (uint64, error) {
	var t uint64
	err := j.db.View(func(tx *bolt.Tx) error {
		t = termOf(tx.Bucket(bucketMeta))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read journal term: %w", err)
	}
	return t, nil
}

func (j *Journal) put(r Record) error {
	return j.db.Batch(func(tx *bolt.Tx) error { return putRecord(tx.Bucket(bucketSteps), r) })
}

func putRecord(b *bolt.Bucket, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record of step %q: %w", r.StepID, err)
	}
	return b.Put([]byte(r.StepID), v)
}

// decodeRecord parses a stored record and checks what the executor relies
// on: a step ID, a known state, and a result exactly when finished.
func decodeRecord(v []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if r.StepID == "" {
		return Record{}, fmt.Errorf("%w: no step ID", ErrBadRecord)
	}
	switch r.State {
	case protocol.StateRunning:
	case protocol.StateInterrupted:
	case protocol.StateSucceeded, protocol.StateFailed:
		if r.Result == nil {
			return Record{}, fmt.Errorf("%w: %s without a result", ErrBadRecord, r.State)
		}
	default:
		return Record{}, fmt.Errorf("%w: state %q", ErrBadRecord, r.State)
	}
	return r, nil
}

func termOf(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyTerm); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}
