package stages

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// entities carries out ensure_entities (del false) or delete_entities:
// each entity's line is put in (replacing the line of the same name) or
// taken out of its file, under the account files' lock, the file written
// whole with its backup as users are. An entity that cannot be applied is
// reported; the others still are.
func (r Runner) entities(ctx context.Context, list []cloudconfig.Entity, del bool) error {
	if len(list) == 0 {
		return nil
	}
	unlock, err := lockAccounts(ctx, r.root())
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, e := range list {
		if err := r.entity(e, del); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d entities failed: %w", len(errs), len(list), errs[0])
	}
	return nil
}

func (r Runner) entity(e cloudconfig.Entity, del bool) error {
	p, err := e.Parse()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if p.Kind == "shadow" || p.Kind == "gshadow" {
		mode = 0o640
	}
	t, err := readTable(r.root(), p.Path, mode)
	if err != nil {
		return err
	}
	if del {
		t.rows = slices.DeleteFunc(t.rows, func(row []string) bool { return row[0] == p.Key })
		return writeTables(r.root(), t)
	}
	row := slices.Clone(p.Fields)
	old := t.find(p.Key)
	// An id not given keeps the line's, or takes the first free one
	// (a user's group id follows its user id).
	fill := func(i int, unset bool) {
		if !unset {
			return
		}
		switch {
		case old != nil && len(old) > i:
			row[i] = old[i]
		case i == 3 && p.Kind == "user":
			row[i] = row[2]
		default:
			row[i] = strconv.Itoa(freeID(t))
		}
	}
	switch p.Kind {
	case "user":
		fill(2, p.UnsetUID)
		fill(3, p.UnsetGID)
	case "group":
		fill(2, p.UnsetGID)
	}
	if old != nil {
		i := slices.IndexFunc(t.rows, func(r []string) bool { return r[0] == p.Key })
		t.rows[i] = row
	} else {
		t.add(row)
	}
	return writeTables(r.root(), t)
}
