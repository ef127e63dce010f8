package kubefile

import (
	"errors"
	"fmt"
	"strings"
)

// archVar is the variable that COPY, ADD, APP, CNI and CSI sources keep for
// the builder to resolve per platform (see ResolveArch).
const archVar = "ARCH"

// expander turns one raw word into its value, Docker style: quotes are
// removed, backslash escapes applied and $VAR, ${VAR}, ${VAR:-word},
// ${VAR-word}, ${VAR:+word}, ${VAR+word}, ${VAR:?msg} and ${VAR?msg}
// substituted.
type expander struct {
	// lookup returns a variable's value and whether it is set.
	lookup func(name string) (string, bool)
	// literal keeps every $ reference as written (quote removal only).
	literal bool
	// deferArch leaves references to ARCH as ${ARCH} for ResolveArch.
	deferArch bool
	// jsonElem processes an element of a JSON array: quotes are ordinary
	// characters and only \$ is an escape.
	jsonElem bool
}

var errBadSubst = errors.New("bad substitution")

// expand processes one raw word.
func (e *expander) expand(word string) (string, error) {
	l := &wordLexer{e: e, s: word}
	out, err := l.run(false)
	if err != nil {
		return "", fmt.Errorf("%w in %q", err, word)
	}
	return out, nil
}

// expandAll processes each word.
func (e *expander) expandAll(words []string) ([]string, error) {
	out := make([]string, len(words))
	for i, w := range words {
		v, err := e.expand(w)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

type wordLexer struct {
	e     *expander
	s     string
	i     int
	depth int // nesting of ${...:-word}
}

// maxNesting bounds ${A:-${B:-...}} nesting, and so the recursion.
const maxNesting = 32

// run processes from the current position to the end of the word or, when
// inBrace is set, up to (not past) the '}' that closes a ${...} reference.
func (l *wordLexer) run(inBrace bool) (string, error) {
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case inBrace && c == '}':
			return b.String(), nil
		case c == '$':
			v, err := l.dollar()
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case l.e.jsonElem:
			if c == '\\' && l.i+1 < len(l.s) && l.s[l.i+1] == '$' {
				l.i++
			}
			b.WriteByte(l.s[l.i])
			l.i++
		case c == '\\':
			if l.i+1 < len(l.s) {
				b.WriteByte(l.s[l.i+1])
			}
			l.i += 2
		case c == '\'':
			end := strings.IndexByte(l.s[l.i+1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated ' quote")
			}
			b.WriteString(l.s[l.i+1 : l.i+1+end])
			l.i += end + 2
		case c == '"':
			if err := l.doubleQuoted(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	if inBrace {
		return "", fmt.Errorf("%w: missing '}'", errBadSubst)
	}
	return b.String(), nil
}

// doubleQuoted processes "..." starting at the opening quote. Inside,
// a backslash escapes only ", $ and itself.
func (l *wordLexer) doubleQuoted(b *strings.Builder) error {
	l.i++
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '"':
			l.i++
			return nil
		case c == '$':
			v, err := l.dollar()
			if err != nil {
				return err
			}
			b.WriteString(v)
		case c == '\\' && l.i+1 < len(l.s) && strings.IndexByte(`"$\`, l.s[l.i+1]) >= 0:
			b.WriteByte(l.s[l.i+1])
			l.i += 2
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return errors.New(`unterminated " quote`)
}

// dollar processes a $ reference starting at the '$'.
func (l *wordLexer) dollar() (string, error) {
	start := l.i
	l.i++
	if l.i >= len(l.s) {
		return "$", nil
	}
	if l.s[l.i] != '{' {
		name := l.name()
		if name == "" {
			return "$", nil // a lone $ is literal
		}
		if l.e.literal {
			return l.s[start:l.i], nil
		}
		return l.value(name), nil
	}
	l.i++
	name := l.name()
	if name == "" || l.i >= len(l.s) {
		return "", errBadSubst
	}
	if l.s[l.i] == '}' {
		l.i++
		if l.e.literal {
			return l.s[start:l.i], nil
		}
		return l.value(name), nil
	}
	colon := l.s[l.i] == ':'
	if colon {
		l.i++
	}
	if l.i >= len(l.s) {
		return "", errBadSubst
	}
	op := l.s[l.i]
	if op != '-' && op != '+' && op != '?' {
		return "", fmt.Errorf("%w: unsupported modifier %q after ${%s", errBadSubst, op, name)
	}
	l.i++
	if l.depth++; l.depth > maxNesting {
		return "", fmt.Errorf("%w: nested more than %d deep", errBadSubst, maxNesting)
	}
	word, err := l.run(true)
	l.depth--
	if err != nil {
		return "", err
	}
	l.i++ // the closing '}'
	if l.e.literal {
		return l.s[start:l.i], nil
	}
	if l.e.deferArch && name == archVar {
		// ARCH is always set and non-empty when ResolveArch runs.
		if op == '+' {
			return word, nil
		}
		return "${" + archVar + "}", nil
	}
	v, set := l.e.lookup(name)
	usable := set && (!colon || v != "")
	switch op {
	case '-':
		if usable {
			return v, nil
		}
		return word, nil
	case '+':
		if usable {
			return word, nil
		}
		return "", nil
	default: // '?'
		if usable {
			return v, nil
		}
		if word == "" {
			word = "not set"
		}
		return "", fmt.Errorf("%s: %s", name, word)
	}
}

// value is the plain substitution of name; unset variables are empty.
func (l *wordLexer) value(name string) string {
	if l.e.deferArch && name == archVar {
		return "${" + archVar + "}"
	}
	v, _ := l.e.lookup(name)
	return v
}

// name reads a variable name: a letter or underscore, then letters, digits
// and underscores.
func (l *wordLexer) name() string {
	start := l.i
	for l.i < len(l.s) {
		c := l.s[l.i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (l.i > start && c >= '0' && c <= '9') {
			l.i++
			continue
		}
		break
	}
	return l.s[start:l.i]
}

// unquote removes quotes and escapes without expanding variables.
func unquote(word string) (string, error) {
	return (&expander{literal: true}).expand(word)
}

func unquoteAll(words []string) ([]string, error) {
	return (&expander{literal: true}).expandAll(words)
}
