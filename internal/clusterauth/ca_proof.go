package clusterauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// InstallProofLabel starts the hashed text of an install proof. The
// network install script computes the proof in POSIX sh with sha256sum,
// so it is a labelled hash rather than an HMAC: the label keeps it apart
// from every other use of the token, and the token's entropy (a generated
// one has 256 bits) makes it one-way. Never change it: every served
// install script computes the same string.
const InstallProofLabel = "drove/v1 install proof:"

// InstallProof is what a network installer sends (HTTP Authorization:
// Bearer) to show it holds the cluster token without sending the token:
// lower-case hex SHA-256 of InstallProofLabel followed by the token. A
// log of request headers thus leaks a proof that opens the download
// endpoints only, never the token or the keys derived from it.
func InstallProof(token string) string {
	sum := sha256.Sum256([]byte(InstallProofLabel + token))
	return hex.EncodeToString(sum[:])
}

// CheckInstallProof reports, in constant time, whether proof is token's
// InstallProof.
func CheckInstallProof(token, proof string) bool {
	want := InstallProof(token)
	return subtle.ConstantTimeCompare([]byte(want), []byte(proof)) == 1
}
