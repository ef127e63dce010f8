package media

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Raw images: an MBR and one FAT32 (LBA) partition starting at 1 MiB.
const (
	sectorSize = 512
	// PartitionOffset is where the FAT32 partition of a raw image starts,
	// in bytes (mtools: -i IMAGE@@1048576).
	PartitionOffset = 1 << 20
)

// writeRaw writes the tree under dir to out as a disk image with one FAT32
// partition labelled label, sized to fit the tree.
func writeRaw(ctx context.Context, dir, out, label string, progress func(done, total int64)) error {
	t, err := scanTree(dir)
	if err != nil {
		return err
	}
	partSize, err := fatSizeFor(t)
	if err != nil {
		return err
	}
	d, err := diskfs.Create(out, PartitionOffset+partSize, diskfs.SectorSize512)
	if err != nil {
		return fmt.Errorf("create disk image: %w", err)
	}
	err = fillRaw(ctx, d, t, dir, partSize, label, progress)
	// Close zeroes d: close once.
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close disk image: %w", cerr)
	}
	return err
}

func fillRaw(ctx context.Context, d *disk.Disk, t *tree, dir string, partSize int64, label string, progress func(done, total int64)) error {
	table := &mbr.Table{
		LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize,
		Partitions: []*mbr.Partition{{
			Index: 1, Bootable: false, Type: mbr.Fat32LBA,
			Start: PartitionOffset / sectorSize, Size: uint32(partSize / sectorSize),
		}},
	}
	if err := d.Partition(table); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: label})
	if err != nil {
		return fmt.Errorf("create FAT32: %w", err)
	}
	for _, dirPath := range t.dirs {
		if err := fsys.Mkdir("/" + dirPath); err != nil {
			return fmt.Errorf("FAT32: create directory %s: %w", dirPath, err)
		}
	}
	var done int64
	buf := make([]byte, copyChunk)
	for _, f := range t.files {
		if err := copyToFAT(ctx, fsys, dir, f.path, buf, func(n int64) {
			done += n
			progress(done, t.bytes)
		}); err != nil {
			return err
		}
	}
	return nil
}

func copyToFAT(ctx context.Context, fsys filesystem.FileSystem, dir, rel string, buf []byte, step func(int64)) error {
	src, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fsys.OpenFile("/"+rel, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("FAT32: create %s: %w", rel, err)
	}
	defer dst.Close()
	if err := copyIn(ctx, dst, src, buf, step); err != nil {
		return fmt.Errorf("FAT32: write %s: %w", rel, err)
	}
	return nil
}

// tree is what fatSizeFor needs to know about the staged files.
type tree struct {
	dirs  []string // io/fs paths, parents first
	files []treeFile
	bytes int64
}

type treeFile struct {
	path string
	size int64
}

func scanTree(dir string) (*tree, error) {
	dirs, files, err := walkTree(dir)
	if err != nil {
		return nil, err
	}
	t := &tree{dirs: dirs}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		t.files = append(t.files, treeFile{f, st.Size()})
		t.bytes += st.Size()
	}
	return t, nil
}

// clustersNeeded is how many clusters of cb bytes the tree takes on FAT32:
// its files, and its directories (root included) with one 32-byte entry
// per name plus a long-name entry per 13 characters.
func (t *tree) clustersNeeded(cb int64) int64 {
	ceil := func(n int64) int64 { return (n + cb - 1) / cb }
	dirBytes := map[string]int64{".": 3 * 32} // root: label, plus room to spare
	for _, d := range t.dirs {
		dirBytes[d] += 2 * 32 // . and ..
	}
	entry := func(p string) {
		dirBytes[path.Dir(p)] += 32 * (1 + (int64(len(path.Base(p)))+12)/13)
	}
	var n int64
	for _, d := range t.dirs {
		entry(d)
	}
	for _, f := range t.files {
		entry(f.path)
		n += ceil(f.size)
	}
	for _, b := range dirBytes {
		n += max(1, ceil(b))
	}
	return n
}

// FAT32 sizes.
const (
	mib = 1 << 20
	// minFATSize gives a 512-byte-cluster FAT32 more than the 65525
	// clusters below which tools take it for FAT16.
	minFATSize = 40 * mib
	// maxFATSize stays below the 2 TiB an MBR partition can address.
	maxFATSize = 2000 << 30
)

// ErrNoCleanSize: no FAT32 size fits the tree.
var ErrNoCleanSize = errors.New("no FAT32 size fits the media tree")

// fatSizeFor picks the FAT32 partition size for the tree: whole MiB, room
// for every cluster plus 2% and 4 MiB, and one where go-diskfs v1.9.4's
// FAT is long enough for every cluster (at some sizes, 64 MiB and 129 MiB
// among them, it is two entries short and fsck.fat and mtools complain).
func fatSizeFor(t *tree) (int64, error) {
	size := max(minFATSize, (t.bytes+t.bytes/50+4*mib+mib-1)/mib*mib)
	for ; size <= maxFATSize; size += mib {
		l := fatLayoutOf(size)
		if !l.clean() {
			continue
		}
		need := t.clustersNeeded(l.clusterBytes)
		slack := need/50 + (4*mib)/l.clusterBytes
		if int64(l.clusters) >= need+slack {
			return size, nil
		}
	}
	return 0, fmt.Errorf("%w: %d bytes in %d files", ErrNoCleanSize, t.bytes, len(t.files))
}

// fatLayout is the arithmetic of go-diskfs v1.9.4's fat32.Create for a
// volume of a given size (512-byte sectors, 32 reserved sectors, 2 FATs).
type fatLayout struct {
	clusterBytes  int64
	sectorsPerFat int64
	clusters      int64
}

func fatLayoutOf(size int64) fatLayout {
	const reserved = 32
	var cb int64
	switch {
	case size <= 260*mib:
		cb = 512
	case size <= 8<<30:
		cb = 4 << 10
	case size <= 16<<30:
		cb = 8 << 10
	case size <= 32<<30:
		cb = 16 << 10
	default:
		cb = 32 << 10
	}
	spc := cb / sectorSize
	total := size / sectorSize
	denom := sectorSize*spc + 8
	spf := (4*(total-reserved) + denom - 1) / denom
	data := total - reserved - 2*spf
	return fatLayout{clusterBytes: cb, sectorsPerFat: spf, clusters: data / spc}
}

// clean: the FAT has an entry for every cluster plus the two reserved
// ones.
func (l fatLayout) clean() bool {
	return l.clusters > 0 && l.sectorsPerFat*(sectorSize/4) >= l.clusters+2
}

// openRaw opens the FAT32 partition of a raw image for reading.
func openRaw(p string) (filesystem.FileSystem, func() error, error) {
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, nil, err
	}
	if _, err := d.GetPartitionTable(); err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("read partition table: %w", err)
	}
	fsys, err := d.GetFilesystem(1)
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("read partition 1: %w", err)
	}
	if fsys.Type() != filesystem.TypeFat32 {
		d.Close()
		return nil, nil, errors.New("partition 1 is not FAT32")
	}
	return fsys, d.Close, nil
}
