package squashfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos/internal/fstree"
)

// An image written with a block cache is the image written without one,
// for every compressor: empty cache, warm cache (every block a hit, and
// the compressor not needed), and a cache whose entries were replaced by
// valid compressions of other blocks or by garbage (each one refused).
func TestBlockCache(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := buildSourceTree(t, dir, 64<<10)
	root, err := fstree.DirSource(src.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"gzip", "zstd", "xz"} {
		t.Run(comp, func(t *testing.T) {
			write := func(cache BlockCache) ([]byte, Stats) {
				var buf writeSeeker
				st, err := Write(&buf, root, Options{Compression: comp, BlockSize: 64 << 10, ModTime: testTime, BlockCache: cache})
				if err != nil {
					t.Fatal(err)
				}
				return buf.b, st
			}
			want, _ := write(nil)
			cache := DirCache{Dir: filepath.Join(t.TempDir(), "blocks")}
			cold, st := write(cache)
			if !bytes.Equal(cold, want) || st.CachedBlocks != 0 {
				t.Fatalf("with an empty cache: same image %v, %d cached blocks", bytes.Equal(cold, want), st.CachedBlocks)
			}
			warm, st := write(cache)
			if !bytes.Equal(warm, want) {
				t.Fatal("a warm cache changed the image")
			}
			if blocks := st.DataBlocks + st.FragmentBlocks; st.CachedBlocks < blocks || blocks == 0 {
				t.Errorf("warm: %d of %d data and fragment blocks from the cache", st.CachedBlocks, blocks)
			}

			// Every compressed entry swapped for another's: each decompresses
			// fine, to the wrong bytes.
			var entries []string
			filepath.Walk(cache.Dir, func(p string, info os.FileInfo, err error) error {
				if err == nil && info.Mode().IsRegular() {
					if data, _ := os.ReadFile(p); len(data) > 1 && data[0] == entryCompressed {
						entries = append(entries, p)
					}
				}
				return nil
			})
			if len(entries) < 2 {
				t.Fatalf("only %d compressed entries", len(entries))
			}
			first, _ := os.ReadFile(entries[0])
			for i, p := range entries {
				if i == len(entries)-1 {
					os.WriteFile(p, first, 0o644)
					continue
				}
				next, _ := os.ReadFile(entries[i+1])
				os.WriteFile(p, next, 0o644)
			}
			poisoned, st := write(cache)
			if !bytes.Equal(poisoned, want) {
				t.Fatal("swapped cache entries changed the image")
			}
			if st.CachedBlocks > (st.DataBlocks+st.FragmentBlocks)-len(entries) {
				t.Errorf("%d blocks taken from a cache whose %d compressed entries were all wrong", st.CachedBlocks, len(entries))
			}
			for _, p := range entries {
				os.WriteFile(p, []byte{entryCompressed, 1, 2, 3}, 0o644)
			}
			if garbage, _ := write(cache); !bytes.Equal(garbage, want) {
				t.Fatal("garbage cache entries changed the image")
			}
		})
	}
}

func TestDirCachePrune(t *testing.T) {
	c := DirCache{Dir: t.TempDir()}
	var keys []BlockKey
	for i := 0; i < 10; i++ {
		k := BlockKey{byte(i), 1}
		c.Put(k, bytes.Repeat([]byte{1}, 1000))
		keys = append(keys, k)
	}
	if _, ok := c.Get(keys[0]); !ok {
		t.Fatal("no entry after Put")
	}
	// keys[0] was just used: it survives, the oldest others go.
	old := testTime
	for _, k := range keys[1:] {
		os.Chtimes(c.path(k), old, old)
	}
	if err := c.Prune(3000); err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, k := range keys {
		if _, ok := c.Get(k); ok {
			left++
		}
	}
	if _, kept := c.Get(keys[0]); !kept || left > 3 {
		t.Errorf("%d entries left, the recent one kept: %v", left, kept)
	}
	if err := (DirCache{Dir: filepath.Join(t.TempDir(), "none")}).Prune(1); err != nil {
		t.Errorf("pruning a cache never written: %v", err)
	}
}
