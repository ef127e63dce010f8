package protocol

import "strconv"

// Peer-to-peer distribution ("the swarm").
//
// Control messages (announce, peer sets, status) travel on the
// coordinators' NATS like every other API request. Bulk bytes never do:
// every peer runs its own small NATS server (its data endpoint, advertised
// as Member.DataPort / SwarmPeer.Addr) and serves the pieces it holds
// there; other peers connect to it as clients and pull with a bounded
// number of requests in flight. Raft holds only the Distribution in the
// plan (which blobs, their piece hashes) and which nodes finished (their
// step results).

// ActionDistribute is the step kind that fetches a Distribution into the
// node's store (and, for seeds, serves it until the distribution is done).
const ActionDistribute = "distribute"

// DefaultPieceSize is the hashed unit of a blob; TransferUnit the most one
// request moves (pieces are fetched in units, each unit one NATS message).
const (
	DefaultPieceSize = 4 << 20
	TransferUnit     = 1 << 20
)

// Distribution is what a distribute step carries: the image and the piece
// manifest of each of its blobs.
type Distribution struct {
	ID          string       `json:"id"`          // unique; a subject token (ValidID)
	Image       string       `json:"image"`       // reference name as the user gave it
	ImageDigest string       `json:"imageDigest"` // sha256:… of the manifest blob
	Blobs       []BlobPieces `json:"blobs"`       // manifest, config and layers
	// Seeds are the node IDs among the step's targets that already hold
	// every blob in their store: they serve them. A seed's step succeeds
	// once one full copy is out in the swarm (it may then leave); it goes
	// on serving until the distribution is done.
	Seeds []string `json:"seeds,omitempty"`
	// SeedsOnly makes every receiver fetch from the seeds alone: a star,
	// as SSH-driven installers copy. Only benchmarks want it, as their
	// baseline.
	SeedsOnly bool `json:"seedsOnly,omitempty"`
}

// Distribution IDs are the ID of the plan that carries them, so the
// tracker knows a distribution is done when its plan has settled.

// BlobPieces is a blob's piece manifest: the sha256 (hex) of each
// PieceSize slice of it, in order; the last piece may be shorter.
type BlobPieces struct {
	Digest    string   `json:"digest"` // sha256:…
	Size      int64    `json:"size"`
	MediaType string   `json:"mediaType,omitempty"`
	PieceSize int64    `json:"pieceSize"`
	Pieces    []string `json:"pieces"`
}

// SwarmPeer is one member of a distribution's swarm.
type SwarmPeer struct {
	ID     string            `json:"id"`
	Addr   string            `json:"addr"` // host:port of its data endpoint
	Labels map[string]string `json:"labels,omitempty"`
	Seed   bool              `json:"seed,omitempty"`
}

// SwarmAnnounce is a peer's periodic report to the tracker (the leader):
// it asks for peers and reports progress. It is answered with SwarmPeers.
type SwarmAnnounce struct {
	Distribution string    `json:"distribution"`
	Peer         SwarmPeer `json:"peer"`
	Have         int64     `json:"have"`  // bytes verified
	Total        int64     `json:"total"` // bytes of every blob
	Complete     bool      `json:"complete,omitempty"`
	Uploaded     int64     `json:"uploaded"`   // bytes served to peers
	Downloaded   int64     `json:"downloaded"` // bytes received from peers, duplicates included
	RateBps      int64     `json:"rateBps"`    // download rate now
	Connected    int       `json:"connected"`  // peers connected now
	Leaving      bool      `json:"leaving,omitempty"`
	SeedsOnly    bool      `json:"seedsOnly,omitempty"` // the distribution's SeedsOnly
}

// SwarmPeers answers an announce: the peers to connect to (random, 8–20,
// preferring ones that share the asker's zone or rack label), and whether
// every target has finished (seeds may then stop serving).
type SwarmPeers struct {
	Peers []SwarmPeer `json:"peers"`
	Done  bool        `json:"done,omitempty"`
	// CopiesOut is how many peers hold every blob besides seeds: a seed may
	// leave once it is at least 1.
	CopiesOut int `json:"copiesOut,omitempty"`
}

// DistributionStatusRequest asks the tracker about one distribution, or
// every active one when Distribution is empty.
type DistributionStatusRequest struct {
	Distribution string `json:"distribution,omitempty"`
}

// DistributionStatus is the tracker's view: the latest announce of each
// peer.
type DistributionStatus struct {
	Distributions []DistributionProgress `json:"distributions"`
}

// DistributionProgress is one distribution's swarm.
type DistributionProgress struct {
	ID    string         `json:"id"`
	Image string         `json:"image,omitempty"`
	Done  bool           `json:"done,omitempty"`
	Peers []PeerProgress `json:"peers"`
}

// PeerProgress is one peer's last announce.
type PeerProgress struct {
	SwarmAnnounce
	SeenMs int64 `json:"seenMs"` // unix ms of the announce
}

func (*SwarmAnnounce) Type() MessageType             { return TypeSwarmAnnounce }
func (*SwarmPeers) Type() MessageType                { return TypeSwarmPeers }
func (*DistributionStatusRequest) Type() MessageType { return TypeDistributionStatusRequest }
func (*DistributionStatus) Type() MessageType        { return TypeDistributionStatus }
func (*Bitfields) Type() MessageType                 { return TypeBitfields }
func (*Have) Type() MessageType                      { return TypeHave }

// Data-endpoint messages. They travel only on the serving peer's own NATS
// server.

// Bitfields answers a bitfield request: for each blob the peer has begun,
// a bit per piece (bit i of byte i/8, most significant first), set when
// the piece is verified. A blob it holds whole has every bit set.
type Bitfields struct {
	Blobs map[string][]byte `json:"blobs"` // blob digest → bits
}

// Have announces one more verified piece, published by the peer on
// SwarmHaveSubject of its own endpoint as soon as the piece is verified.
type Have struct {
	Blob  string `json:"blob"`
	Piece int    `json:"piece"`
}

// SwarmPieceSubject takes piece requests on a peer's data endpoint. A
// request carries no body; its headers name the blob, piece and unit:
//
//	Drove-Blob:   sha256:…
//	Drove-Piece:  piece index
//	Drove-Offset: byte offset within the piece (a multiple of TransferUnit)
//	Drove-Length: bytes wanted (at most TransferUnit)
//
// The reply's body is the bytes; a reply with a Drove-Error header (and a
// Drove-Code) carries no bytes: the peer does not have the piece (code
// not_found), is over its upload limit for too long, or the request is bad.
func SwarmPieceSubject(dist string) string { return Prefix + "swarm." + dist + ".piece" }

// SwarmBitfieldSubject takes requests for the peer's Bitfields.
func SwarmBitfieldSubject(dist string) string { return Prefix + "swarm." + dist + ".bitfield" }

// SwarmHaveSubject carries the peer's Have announcements.
func SwarmHaveSubject(dist string) string { return Prefix + "swarm." + dist + ".have" }

// SwarmDoneSubject takes a requester's word that it has every unit of a
// piece it asked for (or gave the piece up): a message with the blob and
// piece headers and the requester's reply inbox as its reply subject. The
// serving peer holds an upload slot for the piece until then, so the
// bytes it has queued but not yet sent stay bounded (a slot freed when
// the reply is merely queued let a peer queue seconds of data: measured,
// 1 MiB units waited 1 s at p50 and 5 s at worst behind a 100 Mbit/s
// uplink).
func SwarmDoneSubject(dist string) string { return Prefix + "swarm." + dist + ".done" }

// Piece request and reply headers.
const (
	HeaderBlob   = "Drove-Blob"
	HeaderPiece  = "Drove-Piece"
	HeaderOffset = "Drove-Offset"
	HeaderLength = "Drove-Length"
	HeaderError  = "Drove-Error"
	HeaderCode   = "Drove-Code"
)

// PieceRequest is the parsed form of a piece request's headers.
type PieceRequest struct {
	Blob   string
	Piece  int
	Offset int64
	Length int
}

// Headers renders r as header values (see SwarmPieceSubject).
func (r PieceRequest) Headers() map[string]string {
	return map[string]string{
		HeaderBlob: r.Blob, HeaderPiece: strconv.Itoa(r.Piece),
		HeaderOffset: strconv.FormatInt(r.Offset, 10), HeaderLength: strconv.Itoa(r.Length),
	}
}

// ParsePieceRequest reads a piece request from its header values (get
// returns a header's value) and checks it is well formed: a sha256 digest,
// a piece index >= 0, an offset >= 0 aligned to TransferUnit, and a length
// of 1..TransferUnit.
func ParsePieceRequest(get func(string) string) (PieceRequest, error) {
	var r PieceRequest
	r.Blob = get(HeaderBlob)
	if !ValidDigest(r.Blob) {
		return r, Errorf(CodeBadRequest, "piece request: bad blob digest %q", r.Blob)
	}
	p, err := strconv.Atoi(get(HeaderPiece))
	if err != nil || p < 0 {
		return r, Errorf(CodeBadRequest, "piece request: bad piece %q", get(HeaderPiece))
	}
	off, err := strconv.ParseInt(get(HeaderOffset), 10, 64)
	if err != nil || off < 0 || off%TransferUnit != 0 {
		return r, Errorf(CodeBadRequest, "piece request: bad offset %q", get(HeaderOffset))
	}
	n, err := strconv.Atoi(get(HeaderLength))
	if err != nil || n < 1 || n > TransferUnit {
		return r, Errorf(CodeBadRequest, "piece request: bad length %q", get(HeaderLength))
	}
	r.Piece, r.Offset, r.Length = p, off, n
	return r, nil
}

// PieceDone is the parsed form of a done message's headers (see
// SwarmDoneSubject).
type PieceDone struct {
	Blob  string
	Piece int
}

// Headers renders d as header values.
func (d PieceDone) Headers() map[string]string {
	return map[string]string{HeaderBlob: d.Blob, HeaderPiece: strconv.Itoa(d.Piece)}
}

// ParsePieceDone reads a done message from its header values and checks
// it is well formed: a sha256 digest and a piece index >= 0.
func ParsePieceDone(get func(string) string) (PieceDone, error) {
	d := PieceDone{Blob: get(HeaderBlob)}
	if !ValidDigest(d.Blob) {
		return d, Errorf(CodeBadRequest, "piece done: bad blob digest %q", d.Blob)
	}
	p, err := strconv.Atoi(get(HeaderPiece))
	if err != nil || p < 0 {
		return d, Errorf(CodeBadRequest, "piece done: bad piece %q", get(HeaderPiece))
	}
	d.Piece = p
	return d, nil
}

// ValidDigest reports whether d is "sha256:" and 64 lowercase hex digits.
func ValidDigest(d string) bool {
	const prefix = "sha256:"
	if len(d) != len(prefix)+64 || d[:len(prefix)] != prefix {
		return false
	}
	for _, c := range d[len(prefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
