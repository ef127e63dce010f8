package protocol

import (
	"slices"
	"testing"
	"text/template"
)

func TestOutputCalls(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string // step/name
	}{
		{`kubeadm join --token {{output "init" "token"}}`, []string{"init/token"}},
		{`{{if output "a" "x"}}{{output "b" "y" | printf "%s"}}{{else}}{{with output "c" "z"}}{{.}}{{end}}{{end}}`, []string{"a/x", "b/y", "c/z"}},
		{`{{range $i := (output "d" "list")}}{{end}}`, []string{"d/list"}},
		{`{{output .Step "n"}} {{output "e" .Name}}`, []string{"e/"}},
		{`no templates here {{.Node}}`, nil},
	} {
		tmpl, err := template.New("x").Funcs(template.FuncMap{"output": func(string, string) string { return "" }}).Parse(tc.text)
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		var got []string
		OutputCalls(tmpl.Tree.Root, func(step, name string) { got = append(got, step+"/"+name) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, want %v", tc.text, got, tc.want)
		}
	}
}
