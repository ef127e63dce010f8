package mirror

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
)

// tagList is the body of GET /v2/<name>/tags/list.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// serveTags lists the tags cached for repos, sorted, honouring the
// distribution API's n (page size) and last (start after) parameters.
func serveTags(w http.ResponseWriter, r *http.Request, layouts []layoutDir, repos []repoName, name string) {
	set := map[string]bool{}
	for _, repo := range repos {
		for _, l := range layouts {
			for _, e := range l.entries {
				if e.repo == repo && e.tag != "" {
					set[e.tag] = true
				}
			}
		}
	}
	tags := make([]string, 0, len(set))
	for t := range set {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(tags, last)
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	if v := q.Get("n"); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k >= 0 && k < len(tags) {
			tags = tags[:k]
		}
	}
	body, _ := json.Marshal(tagList{Name: name, Tags: tags}) // cannot fail: strings only
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(apiVersionHeader, "registry/2.0")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
