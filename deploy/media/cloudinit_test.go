package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// checkUserData parses user-data as cloud-init would read its runcmd: a
// #cloud-config YAML document whose commands are [sh, -c, script] lists;
// each script must parse with sh -n.
func checkUserData(t *testing.T, name string, b []byte) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("%s: does not start with #cloud-config", name)
	}
	var doc struct {
		RunCmd [][]string `json:"runcmd"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(doc.RunCmd) == 0 {
		t.Fatalf("%s: no runcmd", name)
	}
	for _, c := range doc.RunCmd {
		if len(c) != 3 || c[0] != "sh" || c[1] != "-c" {
			t.Fatalf("%s: runcmd %q is not [sh, -c, script]", name, c)
		}
		if out, err := exec.Command("sh", "-n", "-c", c[2]).CombinedOutput(); err != nil {
			t.Fatalf("%s: sh -n: %v\n%s\n%s", name, err, c[2], out)
		}
	}
}

func TestUserData(t *testing.T) {
	b := userData("CIDATA")
	checkUserData(t, "generated", b)
	if !bytes.Contains(b, []byte("mount -o ro LABEL=CIDATA")) || !bytes.Contains(b, []byte("m="+MountPoint+";")) || !bytes.Contains(b, []byte(`sh "$m/drove/install.sh"`)) {
		t.Fatalf("user-data does not mount the media by label and run install.sh:\n%s", b)
	}
	var md map[string]string
	if err := yaml.Unmarshal(metaData("drove-x"), &md); err != nil || md["instance-id"] != "drove-x" {
		t.Fatalf("meta-data: %v %v", md, err)
	}
}

// TestCloudInitExamples: deploy/cloud-init's examples parse, their scripts
// are valid sh, and the media example is what Build writes.
func TestCloudInitExamples(t *testing.T) {
	files, _ := filepath.Glob("../cloud-init/*/user-data")
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkUserData(t, f, b)
		md, err := os.ReadFile(filepath.Join(filepath.Dir(f), "meta-data"))
		if err != nil || !strings.HasPrefix(string(md), "instance-id: ") {
			t.Fatalf("%s: meta-data %q, %v", filepath.Dir(f), md, err)
		}
	}
	b, _ := os.ReadFile("../cloud-init/media/user-data")
	if !bytes.Equal(b, userData(DefaultLabel)) {
		t.Fatal("deploy/cloud-init/media/user-data differs from what drove media build writes")
	}
}
