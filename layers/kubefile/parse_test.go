package kubefile

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// shown is the exported part of an Instruction, for comparisons.
type shown struct {
	Line  int
	Cmd   string
	Flags map[string]string
	Args  []string
	JSON  bool
	Pairs []KeyValue
}

func show(in Instruction) shown {
	return shown{in.Line, in.Cmd, in.Flags, in.Args, in.JSON, in.Pairs}
}

func parseString(t *testing.T, text string) *Kubefile {
	t.Helper()
	k, err := Parse("Kubefile", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", text, err)
	}
	return k
}

// TestParseForms checks every instruction form. Each case's text follows
// "FROM scratch\n" (or replaces it when it starts with FROM or ARG); the
// instruction checked is the last one.
func TestParseForms(t *testing.T) {
	kv := func(pairs ...string) []KeyValue {
		var out []KeyValue
		for _, p := range pairs {
			k, v, ok := strings.Cut(p, "=")
			out = append(out, KeyValue{Key: k, Value: v, NoValue: !ok})
		}
		return out
	}
	tests := []struct {
		name string
		text string
		want shown
	}{
		{"from scratch", "FROM scratch", shown{Line: 1, Cmd: From, Args: []string{"scratch"}}},
		{"from platform", "FROM --platform=linux/arm64 registry.example/k8s:v1.22", shown{Line: 1, Cmd: From, Flags: map[string]string{"platform": "linux/arm64"}, Args: []string{"registry.example/k8s:v1.22"}}},
		{"from lower case", "from scratch", shown{Line: 1, Cmd: From, Args: []string{"scratch"}}},
		{"from scratch any case checks apps", "FROM Scratch\nAPP a local://x\nLAUNCH a", shown{Line: 3, Cmd: Launch, Args: []string{"a"}}},
		{"from as name", "FROM base:1 AS build", shown{Line: 1, Cmd: From, Args: []string{"base:1"}}},
		{"from variable kept", "ARG V=1\nFROM base:$V", shown{Line: 2, Cmd: From, Args: []string{"base:$V"}}},
		{"copy", "COPY app.yaml manifests/", shown{Line: 2, Cmd: Copy, Args: []string{"app.yaml", "manifests/"}}},
		{"copy many", "copy a b c/", shown{Line: 2, Cmd: Copy, Args: []string{"a", "b", "c/"}}},
		{"copy arch", "COPY ${ARCH}/bin bin", shown{Line: 2, Cmd: Copy, Args: []string{"${ARCH}/bin", "bin"}}},
		{"copy quoted", `COPY "my file" 'dest dir'`, shown{Line: 2, Cmd: Copy, Args: []string{"my file", "dest dir"}}},
		{"copy json", `COPY ["my file", "dest"]`, shown{Line: 2, Cmd: Copy, Args: []string{"my file", "dest"}, JSON: true}},
		{"copy chown", "COPY --chown=1000:1000 --chmod=0644 a b", shown{Line: 2, Cmd: Copy, Flags: map[string]string{"chown": "1000:1000", "chmod": "0644"}, Args: []string{"a", "b"}}},
		{"add", "ADD https://example.com/x.tgz /opt/", shown{Line: 2, Cmd: Add, Args: []string{"https://example.com/x.tgz", "/opt/"}}},
		{"run shell", "RUN echo $HOME && ls  -l", shown{Line: 2, Cmd: Run, Args: []string{"echo $HOME && ls  -l"}}},
		{"run json", `RUN ["sh", "-c", "echo hi"]`, shown{Line: 2, Cmd: Run, Args: []string{"sh", "-c", "echo hi"}, JSON: true}},
		{"run shell test", "RUN [ -f x ] && echo yes", shown{Line: 2, Cmd: Run, Args: []string{"[ -f x ] && echo yes"}}},
		{"run continued", "RUN apt-get update && \\\n    apt-get install -y x", shown{Line: 2, Cmd: Run, Args: []string{"apt-get update &&     apt-get install -y x"}}},
		{"cmd shell", "CMD kubectl apply -f manifests/", shown{Line: 2, Cmd: Cmd, Args: []string{"kubectl apply -f manifests/"}}},
		{"cmd json", `CMD ["kubectl", "get", "pods"]`, shown{Line: 2, Cmd: Cmd, Args: []string{"kubectl", "get", "pods"}, JSON: true}},
		{"cmds json", `CMDS ["kubectl apply -f a.yaml", "kubectl apply -f b.yaml"]`, shown{Line: 2, Cmd: Cmds, Args: []string{"kubectl apply -f a.yaml", "kubectl apply -f b.yaml"}, JSON: true}},
		{"cmds shell", "CMDS kubectl apply -f a.yaml", shown{Line: 2, Cmd: Cmds, Args: []string{"kubectl apply -f a.yaml"}}},
		{"env pairs", `ENV a=1 b="two words" c=`, shown{Line: 2, Cmd: Env, Pairs: kv("a=1", "b=two words", "c=")}},
		{"env legacy", "ENV key some value", shown{Line: 2, Cmd: Env, Pairs: kv("key=some value")}},
		{"env variable kept", "ENV PATH=$PATH:/opt/bin", shown{Line: 2, Cmd: Env, Pairs: kv("PATH=$PATH:/opt/bin")}},
		{"arg name", "ARG VERSION\nFROM scratch", shown{Line: 2, Cmd: From, Args: []string{"scratch"}}},
		{"arg forms", "ARG A B=2 C=", shown{Line: 2, Cmd: Arg, Pairs: kv("A", "B=2", "C=")}},
		{"label", `LABEL "com.example.vendor"="ACME Inc" version=1.0`, shown{Line: 2, Cmd: Label, Pairs: kv("com.example.vendor=ACME Inc", "version=1.0")}},
		{"label legacy", "LABEL description a b", shown{Line: 2, Cmd: Label, Pairs: kv("description=a b")}},
		{"maintainer", "MAINTAINER Jane Doe <jane@example.com>", shown{Line: 2, Cmd: Maintainer, Args: []string{"Jane Doe <jane@example.com>"}}},
		{"app local", "APP myapp local://app.yaml", shown{Line: 2, Cmd: App, Args: []string{"myapp", "local://app.yaml"}}},
		{"app many", "APP mixedapp local://install.sh local://mixedcontext https://example.com/a.yaml http://example.com/b.yaml", shown{Line: 2, Cmd: App, Args: []string{"mixedapp", "local://install.sh", "local://mixedcontext", "https://example.com/a.yaml", "http://example.com/b.yaml"}}},
		{"cni", "CNI calico local://calico", shown{Line: 2, Cmd: CNI, Args: []string{"calico", "local://calico"}}},
		{"csi", "CSI openebs local://openebs.yaml", shown{Line: 2, Cmd: CSI, Args: []string{"openebs", "local://openebs.yaml"}}},
		{"appcmds", "APP a local://x\nAPPCMDS a [\"kubectl apply -f app.yaml\", \"echo done\"]", shown{Line: 3, Cmd: AppCmds, Args: []string{"a", "kubectl apply -f app.yaml", "echo done"}, JSON: true}},
		{"appenv", "APP a local://x\nAPPENV a k1=v1 k2=\"v 2\"", shown{Line: 3, Cmd: AppEnv, Args: []string{"a"}, Pairs: kv("k1=v1", "k2=v 2")}},
		{"launch json", "APP a local://x\nAPP b local://y\nLAUNCH [\"a\",\"b\"]", shown{Line: 4, Cmd: Launch, Args: []string{"a", "b"}, JSON: true}},
		{"launch words", "APP a local://x\nAPP b local://y\nLAUNCH a b", shown{Line: 4, Cmd: Launch, Args: []string{"a", "b"}}},
		{"kubeversion quoted", `KUBEVERSION ">=1.22 <1.26"`, shown{Line: 2, Cmd: KubeVersion, Args: []string{">=1.22 <1.26"}}},
		{"kubeversion bare", "kubeversion >= 1.20, < 1.25", shown{Line: 2, Cmd: KubeVersion, Args: []string{">= 1.20, < 1.25"}}},
		{"comment in continuation", "RUN a \\\n# note\n  b", shown{Line: 2, Cmd: Run, Args: []string{"a   b"}}},
		{"crlf and bom", "\ufeffFROM scratch\r\nCOPY a b\r\n", shown{Line: 2, Cmd: Copy, Args: []string{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if !strings.HasPrefix(strings.ToUpper(text), "FROM") && !strings.HasPrefix(text, "ARG V") && !strings.HasPrefix(text, "ARG VERSION") && !strings.HasPrefix(text, "\ufeff") {
				text = "FROM scratch\n" + text
			}
			k := parseString(t, text)
			got := show(k.Instructions[len(k.Instructions)-1])
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestParseErrors checks every error case, with its exact file:line prefix.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"unknown instruction", "FROM scratch\n\n# c\nCOPY a b\nRUN x\n\nFORM y", `Kubefile:7: unknown instruction "FORM"`},
		{"empty file", "# nothing\n\n", "Kubefile:1: missing FROM instruction"},
		{"only args", "\nARG A=1\nARG B", "Kubefile:2: missing FROM instruction"},
		{"from not first", "COPY a b\nFROM scratch", "Kubefile:1: COPY before FROM: FROM must be the first instruction (only ARG may come before it)"},
		{"second from", "FROM scratch\nFROM scratch", "Kubefile:2: second FROM (first at line 1): only one stage is supported"},
		{"from no args", "FROM", "Kubefile:1: FROM: want exactly one argument (an image or scratch), got 0"},
		{"from two args", "FROM a b", "Kubefile:1: FROM: want exactly one argument (an image or scratch), got 2"},
		{"from bad flag", "FROM --pull=always scratch", "Kubefile:1: FROM does not accept flag --pull"},
		{"from flag no value", "FROM --platform scratch", "Kubefile:1: FROM: flag --platform needs a value (--platform=value)"},
		{"from flag twice", "FROM --platform=a --platform=b scratch", "Kubefile:1: FROM: flag --platform given twice"},
		{"copy one arg", "FROM scratch\nCOPY a", "Kubefile:2: COPY: want at least 2 arguments (source... destination), got 1"},
		{"add one arg", "FROM scratch\nADD a", "Kubefile:2: ADD: want at least 2 arguments (source... destination), got 1"},
		{"copy json one", "FROM scratch\nCOPY [\"a\"]", "Kubefile:2: COPY: want at least 2 arguments (source... destination), got 1"},
		{"copy from flag", "FROM scratch\nCOPY --from=x a b", "Kubefile:2: COPY does not accept flag --from"},
		{"copy unterminated", "FROM scratch\nCOPY \"a b", "Kubefile:2: COPY: unterminated \" quote"},
		{"run empty", "FROM scratch\nRUN", "Kubefile:2: RUN: want a command"},
		{"run flag", "FROM scratch\nRUN --mount=type=cache x", "Kubefile:2: RUN does not accept flag --mount"},
		{"run bad json", "FROM scratch\nRUN [\"a\", 1]", `Kubefile:2: RUN: malformed JSON array ["a", 1]: must be ["string", ...]`},
		{"run unclosed json", "FROM scratch\nRUN [\"a\"", `Kubefile:2: RUN: malformed JSON array ["a": must be ["string", ...]`},
		{"run empty json", "FROM scratch\nRUN []", "Kubefile:2: RUN: empty JSON array: want a command"},
		{"cmd empty", "FROM scratch\nCMD", "Kubefile:2: CMD: want a command"},
		{"cmds bad json", "FROM scratch\nCMDS [kubectl apply]", `Kubefile:2: CMDS: malformed JSON array [kubectl apply]: must be ["string", ...]`},
		{"cmds empty", "FROM scratch\nCMDS", `Kubefile:2: CMDS: want a JSON array of commands: CMDS ["command", ...]`},
		{"cmds empty json", "FROM scratch\nCMDS []", `Kubefile:2: CMDS: empty JSON array: want ["command", ...]`},
		{"env empty", "FROM scratch\nENV", "Kubefile:2: ENV: want at least one name=value"},
		{"env legacy no value", "FROM scratch\nENV a", `Kubefile:2: ENV: "a" has no value: want ENV name=value or ENV name value`},
		{"env missing equals", "FROM scratch\nENV a=1 b", `Kubefile:2: ENV: syntax error: "b" is not of the form name=value`},
		{"env empty name", "FROM scratch\nENV =x", `Kubefile:2: ENV: empty name in "=x"`},
		{"env bad name", "FROM scratch\nENV $x=1", `Kubefile:2: ENV: invalid name "$x"`},
		{"label missing equals", "FROM scratch\nLABEL a=1 b", `Kubefile:2: LABEL: syntax error: "b" is not of the form name=value`},
		{"label empty", "FROM scratch\nLABEL", "Kubefile:2: LABEL: want at least one name=value"},
		{"label unterminated", "FROM scratch\nLABEL a=\"x", "Kubefile:2: LABEL: unterminated \" quote"},
		{"arg empty", "ARG\nFROM scratch", "Kubefile:1: ARG: want a name or name=default"},
		{"arg empty name", "ARG =1\nFROM scratch", `Kubefile:1: ARG: empty name in "=1"`},
		{"bad substitution", "FROM scratch\nENV a=${}", `Kubefile:2: ENV: bad substitution in "${}"`},
		{"unclosed substitution", "FROM scratch\nCOPY ${A:-x b", `Kubefile:2: COPY: bad substitution: missing '}' in "${A:-x"`},
		{"bad modifier", "FROM scratch\nLABEL a=${A%x}", `Kubefile:2: LABEL: bad substitution: unsupported modifier '%' after ${A in "${A%x}"`},
		{"maintainer empty", "FROM scratch\nMAINTAINER", "Kubefile:2: MAINTAINER: want a name"},
		{"app no source", "FROM scratch\nAPP a", "Kubefile:2: APP: want an app name and at least one source (local://path, http:// or https:// URL), got 1 arguments"},
		{"app bad scheme", "FROM scratch\nAPP a ./app.yaml", `Kubefile:2: APP: app "a": source "./app.yaml" must start with local://, http:// or https://`},
		{"app empty local", "FROM scratch\nAPP a local://", `Kubefile:2: APP: app "a": source "local://" has an empty path`},
		{"app bad name", "FROM scratch\nAPP ../x local://a", `Kubefile:2: APP: invalid app name "../x": want letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"cni bad scheme", "FROM scratch\nCNI calico ftp://x", `Kubefile:2: CNI: app "calico": source "ftp://x" must start with local://, http:// or https://`},
		{"csi no source", "FROM scratch\nCSI x", "Kubefile:2: CSI: want an app name and at least one source (local://path, http:// or https:// URL), got 1 arguments"},
		{"duplicate app", "FROM scratch\nAPP a local://x\nCNI a local://y", `Kubefile:3: app "a" already declared at line 2`},
		{"appcmds not json", "FROM scratch\nAPP a local://x\nAPPCMDS a kubectl apply", `Kubefile:3: APPCMDS: want an app name and a JSON array: APPCMDS name ["command", ...]`},
		{"appcmds bad json", "FROM scratch\nAPP a local://x\nAPPCMDS a [\"x\",]", `Kubefile:3: APPCMDS: malformed JSON array ["x",]: must be ["string", ...]`},
		{"appcmds empty", "FROM scratch\nAPPCMDS", "Kubefile:2: APPCMDS: want an app name"},
		{"appcmds undeclared", "FROM scratch\nAPP a local://x\nAPPCMDS b [\"x\"]", `Kubefile:3: APPCMDS for undeclared app "b": declare it first with APP, CNI or CSI`},
		{"appcmds before app", "FROM scratch\nAPPCMDS a [\"x\"]\nAPP a local://x", `Kubefile:2: APPCMDS for undeclared app "a": declare it first with APP, CNI or CSI`},
		{"appenv no pairs", "FROM scratch\nAPP a local://x\nAPPENV a", "Kubefile:3: APPENV: want an app name and at least one name=value"},
		{"appenv bad pair", "FROM scratch\nAPP a local://x\nAPPENV a k", `Kubefile:3: APPENV: syntax error: "k" is not of the form name=value`},
		{"appenv undeclared", "FROM scratch\nAPPENV a k=v", `Kubefile:2: APPENV for undeclared app "a": declare it first with APP, CNI or CSI`},
		{"launch empty", "FROM scratch\nLAUNCH", "Kubefile:2: LAUNCH: want at least one app name"},
		{"launch empty json", "FROM scratch\nLAUNCH []", "Kubefile:2: LAUNCH: want at least one app name"},
		{"launch bad json", "FROM scratch\nAPP a local://x\nLAUNCH [a]", `Kubefile:3: LAUNCH: malformed JSON array [a]: must be ["string", ...]`},
		{"launch twice same app", "FROM scratch\nAPP a local://x\nLAUNCH a a", `Kubefile:3: LAUNCH: app "a" listed twice`},
		{"launch undeclared", "FROM scratch\nAPP a local://x\nLAUNCH [\"a\",\"b\"]", `Kubefile:3: LAUNCH of undeclared app "b": declare it with APP, CNI or CSI`},
		{"launch not last", "FROM scratch\nAPP a local://x\nLAUNCH a\nCOPY x y", "Kubefile:3: LAUNCH must be the last instruction"},
		{"two launches", "FROM scratch\nAPP a local://x\nLAUNCH a\nLAUNCH a", "Kubefile:4: second LAUNCH (first at line 3): only one is allowed"},
		{"cmds not last", "FROM scratch\nCMDS [\"x\"]\nCOPY a b", "Kubefile:2: CMDS must be the last instruction"},
		{"two cmds", "FROM scratch\nCMDS [\"x\"]\nCMDS [\"y\"]", "Kubefile:3: second CMDS (first at line 2): only one is allowed"},
		{"launch and cmds", "FROM scratch\nAPP a local://x\nCMDS [\"x\"]\nLAUNCH a", "Kubefile:4: LAUNCH (line 4) and CMDS (line 3) cannot both be used: each must be the last instruction"},
		{"launch with cmd", "FROM scratch\nAPP a local://x\nCMD echo hi\nLAUNCH a", "Kubefile:4: LAUNCH cannot be combined with CMD (line 3)"},
		{"kubeversion empty", "FROM scratch\nKUBEVERSION", `Kubefile:2: KUBEVERSION: want a version constraint, e.g. KUBEVERSION ">=1.22 <1.26"`},
		{"kubeversion two quoted", "FROM scratch\nKUBEVERSION \">=1\" \"<2\"", "Kubefile:2: KUBEVERSION: want one quoted constraint, got 2 arguments"},
		{"error after continuation", "FROM scratch\nCOPY \\\n  a \\\n  b\nBOGUS", `Kubefile:5: unknown instruction "BOGUS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("Kubefile", strings.NewReader(tt.text))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			var kerr *Error
			if !errors.As(err, &kerr) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	k := parseString(t, "FROM scratch\nCMD echo a\nRUN x \\\n\n  y\nCMD echo b\n")
	want := []string{
		"Kubefile:4: empty continuation line; it will be an error in Docker",
		"Kubefile:2: CMD is deprecated; use CMDS or LAUNCH",
	}
	if !reflect.DeepEqual(k.Warnings, want) {
		t.Errorf("warnings\n got %q\nwant %q", k.Warnings, want)
	}
	if n := len(k.Instructions); n != 4 {
		t.Errorf("got %d instructions, want 4", n)
	}
}

func TestParseLinesAndRaw(t *testing.T) {
	text := "# header\n\nFROM scratch\n  # indented comment\nCOPY a \\\n   b\n\nLABEL x=1 \\  \n y=2\n"
	k := parseString(t, text)
	var got []string
	for _, in := range k.Instructions {
		got = append(got, strconv.Itoa(in.Line)+"|"+in.Raw)
	}
	want := []string{"3|FROM scratch", "5|COPY a    b", "8|LABEL x=1  y=2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestApps(t *testing.T) {
	k := parseString(t, "FROM scratch\nAPP a local://x\nCNI calico local://c\nCSI ebs local://e\nCOPY a b")
	if got, want := k.Apps(), []string{"a", "calico", "ebs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Apps() = %q, want %q", got, want)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseTooLarge(t *testing.T) {
	text := "FROM scratch\n" + strings.Repeat("# padding\n", MaxSize/10)
	_, err := Parse("Kubefile", strings.NewReader(text))
	if err == nil || err.Error() != "Kubefile:1: larger than 4194304 bytes" {
		t.Errorf("got %v", err)
	}
}

func TestParseReadError(t *testing.T) {
	_, err := Parse("Kubefile", failingReader{})
	if err == nil || err.Error() != "read Kubefile: disk on fire" {
		t.Errorf("got %v, want read error", err)
	}
}
