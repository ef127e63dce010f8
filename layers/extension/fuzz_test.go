package extension

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it accepts
// survives encode → decode → encode unchanged. Seeds: testdata/fuzz/FuzzParse
// plus the ones below.
func FuzzParse(f *testing.F) {
	f.Add(`{"buildClient":{"sealerVersion":"v0.9.0","buildahVersion":"1.27.1"},"schemaVersion":"v1alpha1","type":"app-installer","applications":[{"name":"a","type":"kube","files":["a.yaml"],"version":"v1"}],"launch":{"app_names":["a"]}}`)
	f.Add(`{"applications":[{"name":"x","env":{"k":"v"},"cmds":["c"]}],"env":{},"labels":{"l":""},"launch":{"cmds":[]}}`)
	f.Add(`{"applications":[null]}`)
	f.Fuzz(func(t *testing.T, annotation string) {
		ext, err := Parse(annotation)
		if err != nil {
			return
		}
		first, err := ext.Annotation()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := Parse(first)
		if err != nil {
			t.Fatalf("decode own output %s: %v", first, err)
		}
		second, err := again.Annotation()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if first != second {
			t.Fatalf("not stable:\n%s\n%s", first, second)
		}
		_ = again.LaunchCmds()
	})
}

// FuzzParseContainerImages checks that ParseContainerImages never panics
// and that what it accepts survives encode → decode → encode unchanged.
func FuzzParseContainerImages(f *testing.F) {
	f.Add(`[{"image":"docker.io/library/nginx:1.25","appName":"a","platform":{"architecture":"amd64","os":"linux"}}]`)
	f.Add(`[{"image":"x","platform":null}]`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, annotation string) {
		list, err := ParseContainerImages(annotation)
		if err != nil {
			return
		}
		first, err := ContainerImagesAnnotation(list)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := ParseContainerImages(first)
		if err != nil {
			t.Fatalf("decode own output %s: %v", first, err)
		}
		second, _ := ContainerImagesAnnotation(again)
		if first != second {
			t.Fatalf("not stable:\n%s\n%s", first, second)
		}
	})
}

// TestFuzzSeeds checks that the committed seeds mean what their names say:
// bad_* are rejected and the others decode.
func TestFuzzSeeds(t *testing.T) {
	decoders := map[string]func(string) error{
		"FuzzParse":                func(s string) error { _, err := Parse(s); return err },
		"FuzzParseContainerImages": func(s string) error { _, err := ParseContainerImages(s); return err },
	}
	for target, decode := range decoders {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no seeds: %v", target, err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(data), "\n", 3)
			if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
				t.Fatalf("%s: not a go test fuzz v1 string seed", file)
			}
			text, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			err = decode(text)
			if bad := strings.HasPrefix(filepath.Base(file), "bad_"); bad != (err != nil) {
				t.Errorf("%s: error = %v", file, err)
			}
		}
	}
}
