package mirror

import (
	"encoding/json"
	"net/http"
)

// Error codes of the OCI distribution specification that the mirrors send.
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codeUnknown         = "UNKNOWN"
	codeUnavailable     = "UNAVAILABLE"
)

// apiVersionHeader marks responses as registry API v2, as clients probing
// /v2/ expect.
const apiVersionHeader = "Docker-Distribution-API-Version"

// errorBody is the distribution API's error document.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

// errorEntry is one error in an errorBody.
type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers with status and a distribution error document holding
// one error. HEAD requests get the status and headers only.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: msg}}}) // cannot fail: strings only
	writeRawError(w, r, status, body)
}

// writeRawError answers with status and an already encoded error document.
func writeRawError(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set(apiVersionHeader, "registry/2.0")
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readOnly refuses a request that is not GET or HEAD.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return false
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, r, http.StatusMethodNotAllowed, codeUnsupported, "this registry mirror is read-only: "+r.Method+" is not supported")
	return true
}

// writeBase answers GET /v2/, the API version probe.
func writeBase(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set(apiVersionHeader, "registry/2.0")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
}
