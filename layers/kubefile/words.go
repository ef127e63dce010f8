package kubefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// splitKeyword splits "CMD rest" into the upper-cased keyword and the rest.
func splitKeyword(text string) (keyword, rest string) {
	i := strings.IndexAny(text, blanks)
	if i < 0 {
		return strings.ToUpper(text), ""
	}
	return strings.ToUpper(text[:i]), trimBlank(text[i:])
}

// splitWords splits shell-form arguments at unquoted blanks. Quotes and
// backslashes stay in the words; expansion removes them later.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		b      strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isBlank(c):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			b.WriteByte(c)
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case c == '\'' || c == '"':
			inWord = true
			end, err := quoteEnd(s, i)
			if err != nil {
				return nil, err
			}
			b.WriteString(s[i : end+1])
			i = end
		default:
			inWord = true
			b.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words, nil
}

// quoteEnd returns the index of the quote closing the one at s[start].
// Inside double quotes a backslash escapes the next byte.
func quoteEnd(s string, start int) (int, error) {
	q := s[start]
	for i := start + 1; i < len(s); i++ {
		switch {
		case s[i] == q:
			return i, nil
		case s[i] == '\\' && q == '"':
			i++
		}
	}
	return 0, fmt.Errorf("unterminated %c quote", q)
}

// splitFlags takes leading --name=value words off rest. Values keep their
// quotes (raw) so that they can be expanded later.
func splitFlags(rest string) (flags map[string]string, remainder string, err error) {
	remainder = rest
	for strings.HasPrefix(remainder, "--") && len(remainder) > 2 && !isBlank(remainder[2]) {
		end := len(remainder)
		for i := 0; i < len(remainder); i++ {
			c := remainder[i]
			if isBlank(c) {
				end = i
				break
			}
			if c == '\\' {
				i++
				continue
			}
			if c == '\'' || c == '"' {
				j, err := quoteEnd(remainder, i)
				if err != nil {
					return nil, "", err
				}
				i = j
			}
		}
		word := remainder[2:end]
		remainder = trimLeftBlank(remainder[end:])
		name, value, ok := strings.Cut(word, "=")
		if !ok {
			return nil, "", fmt.Errorf("flag --%s needs a value (--%s=value)", word, word)
		}
		if flags == nil {
			flags = map[string]string{}
		}
		if _, dup := flags[name]; dup {
			return nil, "", fmt.Errorf("flag --%s given twice", name)
		}
		flags[name] = value
	}
	return flags, remainder, nil
}

// looksLikeJSON reports whether a RUN or CMD argument is meant as a JSON
// array: "[" followed by a string or "]". A shell test such as
// `[ -f x ] && y` is not.
func looksLikeJSON(s string) bool {
	if !strings.HasPrefix(s, "[") {
		return false
	}
	t := trimLeftBlank(s[1:])
	return strings.HasPrefix(t, `"`) || strings.HasPrefix(t, "]")
}

var errNotJSON = errors.New("not a JSON array")

// parseJSONArray decodes s, which must be exactly one JSON array of strings.
func parseJSONArray(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return nil, errNotJSON
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("malformed JSON array %s: must be [\"string\", ...]", s)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
