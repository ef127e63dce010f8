package kubefile

import (
	"errors"
	"reflect"
	"testing"
)

const scopeKubefile = `ARG BASE=registry.local/k8s
ARG TAG=v1.22
FROM --platform=linux/${PLAT:-amd64} $BASE:$TAG
ARG TAG
ARG DIR=apps
ARG UNSET
ENV PATH=$PATH:/opt/bin OLD=$DIR
ENV DIR=env-$DIR FROM_ENV=$DIR
COPY ${ARCH}/bin $DIR/bin/
COPY ["$DIR/$ARCH", "\\$DIR"]
RUN echo $DIR && ls ${UNSET:-x}
LABEL version=$TAG "tier"="${DIR}"
APP app local://${ARCH}/charts/$DIR http://example.com/$TAG.yaml
APPENV app home=$DIR
APPCMDS app ["echo $DIR"]
KUBEVERSION ">=1.22"
MAINTAINER $DIR
LAUNCH ["app"]
`

func TestSteps(t *testing.T) {
	k := parseString(t, scopeKubefile)
	steps, warnings, err := k.Steps(map[string]string{"TAG": "v1.24", "DIR": "from-cli", "NOPE": "x"}, []string{"PATH=/usr/bin", "HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != len(k.Instructions) {
		t.Fatalf("got %d steps for %d instructions", len(steps), len(k.Instructions))
	}
	byLine := map[int]Step{}
	for _, s := range steps {
		byLine[s.Line] = s
	}
	kv := func(k, v string) KeyValue { return KeyValue{Key: k, Value: v} }
	checks := []struct {
		line  int
		args  []string
		pairs []KeyValue
		flags map[string]string
	}{
		{line: 1, pairs: []KeyValue{kv("BASE", "registry.local/k8s")}},
		{line: 2, pairs: []KeyValue{kv("TAG", "v1.24")}},
		{line: 3, args: []string{"registry.local/k8s:v1.24"}, flags: map[string]string{"platform": "linux/amd64"}},
		{line: 4, pairs: []KeyValue{kv("TAG", "v1.24")}},
		{line: 5, pairs: []KeyValue{kv("DIR", "from-cli")}},
		{line: 6, pairs: []KeyValue{{Key: "UNSET", NoValue: true}}},
		{line: 7, pairs: []KeyValue{kv("PATH", "/usr/bin:/opt/bin"), kv("OLD", "from-cli")}},
		// ENV pairs see the values from before the instruction.
		{line: 8, pairs: []KeyValue{kv("DIR", "env-from-cli"), kv("FROM_ENV", "from-cli")}},
		{line: 9, args: []string{"${ARCH}/bin", "env-from-cli/bin/"}},
		{line: 10, args: []string{"env-from-cli/${ARCH}", "$DIR"}},
		{line: 11, args: []string{"echo $DIR && ls ${UNSET:-x}"}},
		{line: 12, pairs: []KeyValue{kv("version", "v1.24"), kv("tier", "env-from-cli")}},
		{line: 13, args: []string{"app", "local://${ARCH}/charts/env-from-cli", "http://example.com/v1.24.yaml"}},
		{line: 14, args: []string{"app"}, pairs: []KeyValue{kv("home", "env-from-cli")}},
		{line: 15, args: []string{"app", "echo $DIR"}},
		{line: 16, args: []string{">=1.22"}},
		{line: 17, args: []string{"$DIR"}},
		{line: 18, args: []string{"app"}},
	}
	for _, c := range checks {
		s := byLine[c.line]
		if !reflect.DeepEqual(s.Args, c.args) || !reflect.DeepEqual(s.Pairs, c.pairs) || !reflect.DeepEqual(s.Flags, c.flags) {
			t.Errorf("line %d %s: got args %q pairs %+v flags %v\nwant args %q pairs %+v flags %v",
				c.line, s.Cmd, s.Args, s.Pairs, s.Flags, c.args, c.pairs, c.flags)
		}
	}
	wantEnv := []string{"PATH=/usr/bin:/opt/bin", "HOME=/root", "OLD=from-cli", "DIR=env-from-cli", "FROM_ENV=from-cli", "TAG=v1.24"}
	if got := byLine[11].Env; !reflect.DeepEqual(got, wantEnv) {
		t.Errorf("RUN env\n got %q\nwant %q", got, wantEnv)
	}
	if got := byLine[3].Env; got != nil {
		t.Errorf("FROM env = %q, want none", got)
	}
	wantWarn := []string{`Kubefile: build argument "NOPE" is not declared by any ARG`}
	if !reflect.DeepEqual(warnings, wantWarn) {
		t.Errorf("warnings %q, want %q", warnings, wantWarn)
	}
}

func TestStepsArgScopes(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		buildArgs map[string]string
		want      string // the LABEL value of key v
	}{
		{"default", "FROM scratch\nARG A=def\nLABEL v=$A", nil, "def"},
		{"build arg overrides", "FROM scratch\nARG A=def\nLABEL v=$A", map[string]string{"A": "cli"}, "cli"},
		{"declared without default", "FROM scratch\nARG A\nLABEL v=${A-unset}", nil, "unset"},
		{"global not visible after FROM", "ARG A=g\nFROM scratch\nLABEL v=${A-unset}", nil, "unset"},
		{"global inherited when redeclared", "ARG A=g\nFROM scratch\nARG A\nLABEL v=$A", nil, "g"},
		{"redeclared default wins over global", "ARG A=g\nFROM scratch\nARG A=local\nLABEL v=$A", nil, "local"},
		{"env shadows arg", "FROM scratch\nARG A=arg\nENV A=env\nLABEL v=$A", map[string]string{"A": "cli"}, "env"},
		{"arg default uses earlier arg", "FROM scratch\nARG A=x B=${A}y\nLABEL v=$B", nil, "xy"},
		{"undeclared build arg is invisible", "FROM scratch\nLABEL v=${A:-none}", map[string]string{"A": "cli"}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, _, err := parseString(t, tt.text).Steps(tt.buildArgs, nil)
			if err != nil {
				t.Fatal(err)
			}
			last := steps[len(steps)-1]
			if got := last.Pairs[0].Value; got != tt.want {
				t.Errorf("v = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStepsErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"FROM scratch\nENV A=${REQ:?set-REQ}", `Kubefile:2: ENV: REQ: set-REQ in "${REQ:?set-REQ}"`},
		{"FROM scratch\nARG X=${REQ?}", `Kubefile:2: ARG X: REQ: not set in "${REQ?}"`},
		{"FROM scratch\nAPP a local://$EMPTY", `Kubefile:2: APP: app "a": source "local://" has an empty path`},
	}
	for _, tt := range tests {
		_, _, err := parseString(t, tt.text).Steps(nil, nil)
		var kerr *Error
		if !errors.As(err, &kerr) || err.Error() != tt.want {
			t.Errorf("Steps(%q) error = %v, want %s", tt.text, err, tt.want)
		}
	}
}

func TestFrom(t *testing.T) {
	k := parseString(t, "ARG V=1\nFROM --platform=$P base:$V\nRUN x")
	st, err := k.From(map[string]string{"P": "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Cmd != From || st.Args[0] != "base:1" || st.Flags["platform"] != "" {
		// P is not declared by ARG, so it stays unset.
		t.Errorf("From() = %+v", st)
	}
	k = parseString(t, "ARG V=1\nARG P\nFROM --platform=$P base:$V\nRUN x")
	st, err = k.From(map[string]string{"P": "linux/arm64", "V": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Args[0] != "base:2" || st.Flags["platform"] != "linux/arm64" || st.Line != 3 {
		t.Errorf("From() = %+v", st)
	}
}
