package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// manifestAccept is sent upstream when the client named no media types.
var manifestAccept = []string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
}

// forwardedRequest are the client headers passed upstream.
var forwardedRequest = []string{"Accept", "Range", "If-None-Match", "If-Modified-Since", "If-Range"}

// forwardedResponse are the upstream headers passed back to the client.
var forwardedResponse = []string{
	"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges",
	"Docker-Content-Digest", "ETag", "Last-Modified", "Link",
}

// maxErrorBody bounds the upstream error document passed back.
const maxErrorBody = 64 << 10

// upstreamRequest sends req's method and forwarded headers to target.
func upstreamRequest(ctx context.Context, req *http.Request, up *upstreamRepo, target string) (*http.Response, error) {
	out, err := http.NewRequestWithContext(ctx, req.Method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("build upstream request %s: %w", target, err)
	}
	for _, k := range forwardedRequest {
		for _, v := range req.Header.Values(k) {
			out.Header.Add(k, v)
		}
	}
	return up.client.Do(out)
}

// proxyManifest fetches a manifest upstream and passes it back byte for
// byte, checking a manifest fetched by digest against it and recording the
// pull.
func (r *Recorder) proxyManifest(w http.ResponseWriter, req *http.Request, repo repoName, up *upstreamRepo, rt route) {
	ref := rt.tag
	if ref == "" {
		ref = rt.digest.String()
	}
	if len(req.Header.Values("Accept")) == 0 {
		req = req.Clone(req.Context())
		for _, a := range manifestAccept {
			req.Header.Add("Accept", a)
		}
	}
	resp, err := upstreamRequest(req.Context(), req, up, up.url("manifests", ref))
	if err != nil {
		r.upstreamFailed(w, req, repo, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		copyHeaders(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		return
	}
	if resp.StatusCode >= 300 {
		r.passError(w, req, repo, resp, codeManifestUnknown)
		return
	}
	if req.Method == http.MethodHead {
		if d, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest")); err == nil && rt.tag != "" {
			r.noteResolved(repo, rt.tag, d)
		}
		copyHeaders(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		r.upstreamFailed(w, req, repo, fmt.Errorf("read manifest %s:%s: %w", repo, ref, err))
		return
	}
	if len(body) > maxManifestSize {
		r.refuse(w, req, repo, fmt.Sprintf("upstream manifest %s@%s is larger than %d bytes", repo, ref, maxManifestSize))
		return
	}
	sum := sha256.Sum256(body)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if rt.tag == "" && rt.digest != d {
		if rt.digest.Algorithm != "sha256" {
			r.refuse(w, req, repo, fmt.Sprintf("manifest %s@%s: only sha256 digests are supported", repo, rt.digest))
			return
		}
		r.refuse(w, req, repo, fmt.Sprintf("upstream manifest %s@%s does not match its digest (got %s)", repo, rt.digest, d))
		return
	}
	mt := types.MediaType(resp.Header.Get("Content-Type"))
	var children []v1.Descriptor
	if mt.IsIndex() || (!mt.IsImage() && looksLikeIndex(body)) {
		if im, err := v1.ParseIndexManifest(bytes.NewReader(body)); err == nil {
			children = im.Manifests
		}
	}
	copyHeaders(w.Header(), resp.Header)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	if _, err := w.Write(body); err != nil {
		r.log.Debug("client went away during a manifest", "image", normalizedRef(repo, "@"+d.String()), "err", err)
		return
	}
	r.notePulled(repo, rt.tag, d, children)
}

// looksLikeIndex reports whether a manifest of unknown media type lists
// manifests, as an index does.
func looksLikeIndex(body []byte) bool {
	var probe struct {
		Manifests json.RawMessage `json:"manifests"`
	}
	return json.Unmarshal(body, &probe) == nil && len(probe.Manifests) > 0
}

// proxyStream passes a blob or tag list request upstream and streams the
// answer back.
func (r *Recorder) proxyStream(w http.ResponseWriter, req *http.Request, repo repoName, up *upstreamRepo, kind, ref string) {
	target := up.url(kind, ref)
	if q := forwardedQuery(req.URL.Query()); q != "" {
		target += "?" + q
	}
	resp, err := upstreamRequest(req.Context(), req, up, target)
	if err != nil {
		r.upstreamFailed(w, req, repo, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		code := codeBlobUnknown
		if kind == "tags" {
			code = codeNameUnknown
		}
		r.passError(w, req, repo, resp, code)
		return
	}
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if req.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		r.log.Debug("blob transfer through the build mirror broke", "repo", repo.String(), "ref", ref, "err", err)
	}
}

// forwardedQuery keeps the tag list's paging parameters (n, last).
func forwardedQuery(q url.Values) string {
	out := url.Values{}
	for _, k := range []string{"n", "last"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out.Encode()
}

// copyHeaders copies the forwarded response headers from src to dst.
func copyHeaders(dst, src http.Header) {
	for _, k := range forwardedResponse {
		if vs := src.Values(k); len(vs) > 0 {
			dst[k] = append([]string(nil), vs...)
		}
	}
	dst.Set(apiVersionHeader, "registry/2.0")
}

// passError passes an upstream error answer back with its status and its
// distribution error document; an answer without one gets a document with
// fallback (or the code its status implies).
func (r *Recorder) passError(w http.ResponseWriter, req *http.Request, repo repoName, resp *http.Response, fallback string) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	r.log.Warn("upstream registry refused a build pull", "repo", repo.String(), "path", req.URL.Path, "status", resp.StatusCode)
	var doc errorBody
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		writeRawError(w, req, resp.StatusCode, body)
		return
	}
	code := fallback
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		code = "UNAUTHORIZED"
	case http.StatusForbidden:
		code = "DENIED"
	case http.StatusNotFound:
	default:
		code = codeUnknown
	}
	writeError(w, req, resp.StatusCode, code, fmt.Sprintf("upstream registry %s answered %s", repo.host, resp.Status))
}

// upstreamFailed answers for an upstream that could not be asked: a
// registry error from the handshake keeps its status and codes; anything
// else (refused connection, unknown host, timeout) is 502 UNAVAILABLE.
func (r *Recorder) upstreamFailed(w http.ResponseWriter, req *http.Request, repo repoName, err error) {
	r.log.Warn("cannot pull through the build mirror", "repo", repo.String(), "path", req.URL.Path, "err", err)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode >= 400 {
		doc := errorBody{}
		for _, d := range terr.Errors {
			doc.Errors = append(doc.Errors, errorEntry{Code: string(d.Code), Message: d.Message, Detail: d.Detail})
		}
		if len(doc.Errors) == 0 {
			doc.Errors = []errorEntry{{Code: codeUnknown, Message: fmt.Sprintf("upstream registry %s: %v", repo.host, err)}}
		}
		body, _ := json.Marshal(doc)
		writeRawError(w, req, terr.StatusCode, body)
		return
	}
	writeError(w, req, http.StatusBadGateway, codeUnavailable, fmt.Sprintf("cannot reach upstream registry %s: %v", repo.host, err))
}

// refuse answers 502 for an upstream answer the mirror will not pass on.
func (r *Recorder) refuse(w http.ResponseWriter, req *http.Request, repo repoName, msg string) {
	r.log.Error("refusing an upstream answer", "repo", repo.String(), "problem", msg)
	writeError(w, req, http.StatusBadGateway, codeUnknown, msg)
}
