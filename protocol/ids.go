package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewPlanID makes a sortable, unique plan ID such as
// "20261204-204512-3fa9c2d1e0f4". A client that sets it in PlanSubmit can retry
// the submit without creating the plan twice.
func NewPlanID(t time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}
