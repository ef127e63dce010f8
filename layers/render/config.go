package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// Config strategies (spec.strategy).
const (
	StrategyOverwrite = "overwrite" // the default: data replaces the file
	StrategyMerge     = "merge"     // data is deep-merged into each YAML document of the file
)

// AppsDir is where an image keeps its applications; a Config with an
// appName has its path under AppsDir/<appName>/.
const AppsDir = "application/apps"

// ErrBadConfig is wrapped by every error about a Config's own fields.
var ErrBadConfig = errors.New("invalid Config")

// ErrPathEscape is wrapped when a Config's path is absolute or leaves the
// rootfs (also through a symbolic link).
var ErrPathEscape = errors.New("path leaves the rootfs")

// ValidateConfig checks what can be checked of cfg without a rootfs: path
// and appName, strategy, processor names, and that data parses as YAML
// where the strategy or processors need it. The Clusterfile decoder can
// call it to report FILE:LINE; ApplyConfigs makes the same checks. The error names
// the field and wraps ErrBadConfig (and ErrPathEscape for a bad path).
func ValidateConfig(cfg protocol.ConfigFile) error {
	if _, err := configTarget(cfg); err != nil {
		return err
	}
	if _, err := parseStrategy(cfg.Strategy); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	p, err := parsePipeline(cfg.Process)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	data, err := p.run([]byte(cfg.Data))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if p.toSecret {
		if _, err := dataMapping(data); err != nil {
			return fmt.Errorf("%w: toSecret: %w", ErrBadConfig, err)
		}
	} else if cfg.Strategy == StrategyMerge {
		if _, err := ParseDocuments(data); err != nil {
			return fmt.Errorf("%w: spec.data for strategy merge: %w", ErrBadConfig, err)
		}
	}
	return nil
}

// ApplyConfigs applies a Clusterfile's Config documents to the files of
// rootfs, in order (a later Config of the same file sees the earlier
// result), as sealer's Config does:
//
//   - spec.path is relative to rootfs, or to application/apps/<appName>/;
//     absolute paths and ".." escapes are refused;
//   - the processors (value, toJson, toBase64) transform data first;
//   - toSecret base64-encodes each value of data into the data: of the
//     Secret document(s) of the existing file;
//   - otherwise strategy overwrite (the default) replaces the file and
//     merge deep-merges data into it (MergeDocuments; a plain mapping goes
//     into every document, a document with apiVersion or kind into the
//     matching ones); a missing file is created with data.
//
// Every Config is checked and its result computed before any file is
// written, so one bad Config changes nothing. Each file is replaced
// atomically and keeps its mode (new files get 0644).
func ApplyConfigs(ctx context.Context, rootfs string, configs []protocol.ConfigFile) error {
	_, err := applyConfigs(ctx, rootfs, configs)
	return err
}

// pendingFile is a file's content after the Configs so far.
type pendingFile struct {
	data []byte
	mode fs.FileMode
}

// applyConfigs does ApplyConfigs and returns the files written (relative
// to rootfs, in the order first configured).
func applyConfigs(ctx context.Context, rootfs string, configs []protocol.ConfigFile) ([]string, error) {
	if len(configs) == 0 {
		return nil, nil
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("apply configs: open rootfs: %w", err)
	}
	defer root.Close()
	var set fileSet
	if err := set.configure(ctx, root, configs); err != nil {
		return nil, err
	}
	if err := set.write(ctx, root); err != nil {
		return nil, fmt.Errorf("apply configs: %w", err)
	}
	return set.order, nil
}

// fileSet is files to write, computed in memory first.
type fileSet struct {
	files map[string]*pendingFile
	order []string // names in the order first added
}

// set records name's new content.
func (s *fileSet) set(name string, f *pendingFile) {
	if s.files == nil {
		s.files = map[string]*pendingFile{}
	}
	if _, ok := s.files[name]; !ok {
		s.order = append(s.order, name)
	}
	s.files[name] = f
}

// configure computes the Configs, in order, over the files of the set and
// of root.
func (s *fileSet) configure(ctx context.Context, root *os.Root, configs []protocol.ConfigFile) error {
	for i, cfg := range configs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("apply configs: %w", err)
		}
		name, err := configTarget(cfg)
		if err != nil {
			return fmt.Errorf("config %d (spec.path %q): %w", i+1, cfg.Path, err)
		}
		cur, ok := s.files[name]
		if !ok {
			if cur, err = readExisting(root, name); err != nil {
				return fmt.Errorf("config %d (spec.path %q): %w", i+1, cfg.Path, err)
			}
		}
		out, err := configure(cfg, name, cur)
		if err != nil {
			return fmt.Errorf("config %d (spec.path %q): %w", i+1, cfg.Path, err)
		}
		s.set(name, out)
	}
	return nil
}

// write writes every file of the set, in order.
func (s *fileSet) write(ctx context.Context, root *os.Root) error {
	for _, name := range s.order {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := s.files[name]
		if _, err := writeFile(root, name, p.data, p.mode); err != nil {
			return err
		}
	}
	return nil
}

// readExisting is the file at name, or nil when there is none. A path
// through a symbolic link out of the root is ErrPathEscape.
func readExisting(root *os.Root, name string) (*pendingFile, error) {
	fi, err := root.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil && isEscape(err):
		return nil, fmt.Errorf("%w: %w", ErrPathEscape, err)
	case err != nil:
		return nil, fmt.Errorf("stat existing file: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: spec.path %s is not a regular file", ErrBadConfig, name)
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read existing file: %w", err)
	}
	return &pendingFile{data: data, mode: fi.Mode().Perm()}, nil
}

// configure computes the file name after cfg; cur is the file before (nil
// when missing).
func configure(cfg protocol.ConfigFile, name string, cur *pendingFile) (*pendingFile, error) {
	strategy, err := parseStrategy(cfg.Strategy)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	p, err := parsePipeline(cfg.Process)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	data, err := p.run([]byte(cfg.Data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	out := &pendingFile{data: data, mode: 0o644}
	if cur != nil {
		out.mode = cur.mode
	}
	switch {
	case p.toSecret:
		if cur == nil {
			return nil, fmt.Errorf("%w: toSecret needs an existing file holding a Secret", ErrBadConfig)
		}
		if out.data, err = patchSecret(cur.data, data); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, name, err)
		}
	case strategy == StrategyMerge && cur == nil:
		if _, err := ParseDocuments(data); err != nil {
			return nil, fmt.Errorf("%w: spec.data for strategy merge: %w", ErrBadConfig, err)
		}
	case strategy == StrategyMerge:
		if _, err := ParseDocuments(cur.data); err != nil {
			return nil, fmt.Errorf("%w: strategy merge: existing file %s: %w", ErrBadConfig, name, err)
		}
		if out.data, err = MergeDocuments(cur.data, data); err != nil {
			return nil, fmt.Errorf("%w: strategy merge into %s: %w", ErrBadConfig, name, err)
		}
	}
	return out, nil
}

// isEscape reports whether err is os.Root refusing a path that leaves
// the root (the os package exports no sentinel for it).
func isEscape(err error) bool {
	return strings.Contains(err.Error(), "path escapes from parent")
}

// parseStrategy reads spec.strategy; empty means overwrite.
func parseStrategy(s string) (string, error) {
	switch s {
	case "", StrategyOverwrite:
		return StrategyOverwrite, nil
	case StrategyMerge:
		return StrategyMerge, nil
	}
	return "", fmt.Errorf("spec.strategy: unknown strategy %q (want %s or %s)", s, StrategyOverwrite, StrategyMerge)
}

// configTarget is the slash-separated path, relative to the rootfs, that
// cfg writes.
func configTarget(cfg protocol.ConfigFile) (string, error) {
	p := cfg.Path
	switch {
	case strings.TrimSpace(p) == "":
		return "", fmt.Errorf("%w: spec.path is empty", ErrBadConfig)
	case strings.ContainsRune(p, 0):
		return "", fmt.Errorf("%w: spec.path holds a NUL byte", ErrBadConfig)
	case path.IsAbs(p) || strings.HasPrefix(p, `\`):
		return "", fmt.Errorf("%w: %w: spec.path %q is absolute", ErrBadConfig, ErrPathEscape, p)
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: %w: spec.path %q goes above its directory", ErrBadConfig, ErrPathEscape, p)
	}
	if clean == "." || strings.HasSuffix(p, "/") {
		return "", fmt.Errorf("%w: spec.path %q names a directory, not a file", ErrBadConfig, p)
	}
	if a := cfg.AppName; a != "" {
		if a == "." || a == ".." || strings.ContainsAny(a, "/\\\x00") {
			return "", fmt.Errorf("%w: %w: spec.appName %q is not a plain name", ErrBadConfig, ErrPathEscape, a)
		}
		clean = path.Join(AppsDir, a, clean)
	}
	return clean, nil
}
