package protocol

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// samples holds one filled-in message of every type.
func samples() []Message {
	return []Message{
		&StepDispatch{StepID: "p1/0/0/n1", PlanID: "p1", Node: "n1", Action: Action{Kind: "shell", Command: "echo hi", Env: map[string]string{"A": "1"}},
			TimeoutMs: 5000, Idempotent: true, Attempt: 2, Term: 7, Leader: "m1"},
		&StepResult{StepID: "p1/0/0/n1", Node: "n1", Attempt: 2, State: StateSucceeded, ExitCode: 0, Output: "hi\n",
			OutputDigest: "sha256:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4", Outputs: map[string]string{"join": "kubeadm join x"}},
		&PlanSubmit{Plan: PlanSpec{Name: "exec", Phases: []PhaseSpec{{Name: "run", Parallel: 1, Steps: []StepSpec{{
			Name: "cmd", Target: Selector{Roles: []string{"node"}}, Action: Action{Kind: "shell", Command: "uptime"},
			Retry: RetryPolicy{Attempts: 3, BackoffMs: 100}, TimeoutMs: 1000}}}}}},
		&PlanSubmitted{PlanID: "p1"},
		&StatusRequest{},
		&Status{Members: []Member{{ID: "n1", Address: "127.0.0.2", Roles: []string{"master"}, State: "alive", Coord: true}}, Leader: "n1", Voters: []string{"n1"}, Term: 3},
		&PlanListRequest{},
		&PlanList{Plans: []PlanSummary{{ID: "p1", Name: "exec", State: "running", Steps: 6, Succeeded: 2, Created: 1700000000000}}},
		&PlanGetRequest{PlanID: "p1"},
		&PlanDetail{Summary: PlanSummary{ID: "p1", State: "failed", Steps: 1, Failed: 1},
			Phases: []PhaseStatus{{Name: "run", Steps: []NodeStepStatus{{StepID: "p1/0/0/n1", Step: "cmd", Node: "n1", State: StateFailed, ExitCode: 3, Error: "exit 3"}}}}},
		&RetryRequest{PlanID: "p1", StepID: "p1/0/0/n1"},
		&Ack{},
		&Error{Code: CodeNotLeader, Message: "ask m2", Leader: "m2"},
		&NodeHello{Node: Member{ID: "n2", Address: "127.0.0.3", State: "alive", Arch: "amd64"}},
		&SwarmAnnounce{Distribution: "d1", Peer: SwarmPeer{ID: "n1", Addr: "127.0.0.2:7950", Labels: map[string]string{"zone": "a"}},
			Have: 4 << 20, Total: 48 << 20, Uploaded: 1 << 20, Downloaded: 5 << 20, RateBps: 12 << 20, Connected: 8},
		&SwarmPeers{Peers: []SwarmPeer{{ID: "n2", Addr: "127.0.0.3:7950", Seed: true}}, CopiesOut: 1},
		&DistributionStatusRequest{Distribution: "d1"},
		&DistributionStatus{Distributions: []DistributionProgress{{ID: "d1", Image: "demo:1", Peers: []PeerProgress{{
			SwarmAnnounce: SwarmAnnounce{Distribution: "d1", Peer: SwarmPeer{ID: "n1", Addr: "127.0.0.2:7950"}, Have: 1, Total: 2}, SeenMs: 1700000000000}}}}},
		&Bitfields{Blobs: map[string][]byte{"sha256:abababababababababababababababababababababababababababababababab": {0xf0}}},
		&Have{Blob: "sha256:abababababababababababababababababababababababababababababababab", Piece: 3},
		&ClusterGetRequest{},
		&ClusterRevision{Serial: 2, Clusterfile: "apiVersion: sealer.io/v2\nkind: Cluster\n", Image: "demo:1",
			ImageDigest: "sha256:abababababababababababababababababababababababababababababababab", Runtime: "plain", PlanID: "p1", Applied: 1700000000000},
	}
}

// TestGolden pins the bytes of every message type: a change to the wire
// format shows up here, and must be a new version or an additive field.
func TestGolden(t *testing.T) {
	seen := map[MessageType]bool{}
	for _, m := range samples() {
		seen[m.Type()] = true
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "golden", m.Type().String()+".frame")
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, b, 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test -update to create)", m.Type(), err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s encodes to\n%q\nwant\n%q", m.Type(), b, want)
		}
		got, err := Decode(want)
		if err != nil {
			t.Fatalf("decode %s: %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", m.Type(), got, m)
		}
	}
	for t2 := range typeNames {
		if !seen[t2] {
			t.Errorf("no golden sample for %s", t2)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want error
	}{
		{nil, ErrShortFrame},
		{[]byte{Version}, ErrShortFrame},
		{[]byte{9, 1, '{', '}'}, ErrVersion},
		{[]byte{Version, 200, '{', '}'}, ErrUnknownType},
		{[]byte{Version, 0, '{', '}'}, ErrUnknownType},
		{make([]byte, MaxFrame+1), ErrFrameSize},
	} {
		if _, err := Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("Decode(%q): %v, want %v", c.in[:min(len(c.in), 8)], err, c.want)
		}
	}
	if _, err := Decode([]byte{Version, byte(TypeAck), '{'}); err == nil {
		t.Error("truncated JSON decoded")
	}
}

func TestDecodeAs(t *testing.T) {
	b, _ := Encode(&Error{Code: CodeNotFound, Message: "no plan p9"})
	var ps PlanSubmitted
	err := DecodeAs(b, &ps)
	if !errors.Is(err, &Error{Code: CodeNotFound}) {
		t.Fatalf("DecodeAs of an Error: %v", err)
	}
	b, _ = Encode(&PlanSubmitted{PlanID: "p2"})
	if err := DecodeAs(b, &ps); err != nil || ps.PlanID != "p2" {
		t.Fatalf("DecodeAs: %v %+v", err, ps)
	}
	var st Status
	if err := DecodeAs(b, &st); err == nil {
		t.Fatal("DecodeAs accepted the wrong type")
	}
}

func TestSubjects(t *testing.T) {
	if NodeStepSubject("n1") != "drove.v1.node.n1.step" {
		t.Fatal(NodeStepSubject("n1"))
	}
	for id, ok := range map[string]bool{"n1": true, "a-b_c": true, "": false, "a.b": false, "a*": false, "a>": false, "a b": false} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v", id, !ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte{Version, byte(TypeStepResult), '[', ']'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", m.Type(), err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", m.Type(), err)
		}
		// Stable on the wire (an empty map and a nil one both encode as
		// nothing, so compare bytes, not structs).
		again2, err := Encode(m2)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("not stable: %q vs %q (%v)", again, again2, err)
		}
	})
}

// TestGoldenDistribute pins a plan carrying a distribute action (the
// swarm's metadata in raft).
func TestGoldenDistribute(t *testing.T) {
	m := &PlanSubmit{PlanID: "p2", Plan: PlanSpec{Name: "distribute", Phases: []PhaseSpec{{Name: "distribute", Steps: []StepSpec{{
		Name: "fetch", Target: Selector{Roles: []string{"node"}}, Idempotent: true,
		Action: Action{Kind: ActionDistribute, Distribution: &Distribution{ID: "d1", Image: "demo:1", ImageDigest: "sha256:abababababababababababababababababababababababababababababababab",
			Blobs: []BlobPieces{{Digest: "sha256:abababababababababababababababababababababababababababababababab", Size: 5 << 20, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
				PieceSize: 4 << 20, Pieces: []string{"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef"}}}}}}}}}}}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "PlanSubmit-distribute.frame")
	if *update {
		os.WriteFile(path, b, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("encodes to\n%q\nwant\n%q (%v)", b, want, err)
	}
	got, err := Decode(want)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %#v %v", got, err)
	}
}

func TestParsePieceRequest(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	ok := PieceRequest{Blob: d, Piece: 2, Offset: TransferUnit, Length: 100}
	h := ok.Headers()
	got, err := ParsePieceRequest(func(k string) string { return h[k] })
	if err != nil || got != ok {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []map[string]string{
		{HeaderBlob: "sha256:x", HeaderPiece: "0", HeaderOffset: "0", HeaderLength: "1"},
		{HeaderBlob: d, HeaderPiece: "-1", HeaderOffset: "0", HeaderLength: "1"},
		{HeaderBlob: d, HeaderPiece: "0", HeaderOffset: "5", HeaderLength: "1"},
		{HeaderBlob: d, HeaderPiece: "0", HeaderOffset: "0", HeaderLength: "0"},
		{HeaderBlob: d, HeaderPiece: "0", HeaderOffset: "0", HeaderLength: "1048577"},
		{},
	} {
		if _, err := ParsePieceRequest(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v accepted", bad)
		} else if pe, ok := err.(*Error); !ok || pe.Code != CodeBadRequest {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func FuzzParsePieceRequest(f *testing.F) {
	f.Add("sha256:"+strings.Repeat("ab", 32), "1", "1048576", "10")
	f.Fuzz(func(t *testing.T, blob, piece, off, n string) {
		h := map[string]string{HeaderBlob: blob, HeaderPiece: piece, HeaderOffset: off, HeaderLength: n}
		r, err := ParsePieceRequest(func(k string) string { return h[k] })
		if err != nil {
			return
		}
		if !ValidDigest(r.Blob) || r.Piece < 0 || r.Offset%TransferUnit != 0 || r.Length < 1 || r.Length > TransferUnit {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func TestParsePieceDone(t *testing.T) {
	d := "sha256:" + strings.Repeat("cd", 32)
	ok := PieceDone{Blob: d, Piece: 7}
	h := ok.Headers()
	got, err := ParsePieceDone(func(k string) string { return h[k] })
	if err != nil || got != ok {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []map[string]string{
		{HeaderBlob: "sha256:" + strings.Repeat("CD", 32), HeaderPiece: "0"},
		{HeaderBlob: d, HeaderPiece: "-3"},
		{HeaderBlob: d, HeaderPiece: "x"},
		{HeaderBlob: d},
		{},
	} {
		if _, err := ParsePieceDone(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v accepted", bad)
		} else if pe, ok := err.(*Error); !ok || pe.Code != CodeBadRequest {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func FuzzParsePieceDone(f *testing.F) {
	f.Add("sha256:"+strings.Repeat("ab", 32), "3")
	f.Fuzz(func(t *testing.T, blob, piece string) {
		h := map[string]string{HeaderBlob: blob, HeaderPiece: piece}
		d, err := ParsePieceDone(func(k string) string { return h[k] })
		if err != nil {
			return
		}
		if n, perr := strconv.Atoi(piece); !ValidDigest(d.Blob) || d.Piece < 0 || perr != nil || n != d.Piece {
			t.Fatalf("accepted %q %q as %+v", blob, piece, d)
		}
	})
}
