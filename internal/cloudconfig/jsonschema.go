package cloudconfig

import (
	"reflect"
	"strings"
)

// JSONSchema describes the language as a JSON Schema (draft 2020-12),
// generated from the same types the decoder reads, for editors and
// `kairos-agent print-schema`. Keys the agent refuses (not supported yet)
// are left out; unknown keys are allowed, as the decoder only warns about
// them. The decoder is more lenient than the schema says (a scalar for a
// one-item list, yes/no booleans): the schema gives the canonical shape.
func JSONSchema(id string) map[string]any {
	s := schemaOf(reflect.TypeFor[Config](), map[reflect.Type]bool{})
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = id
	s["title"] = "Kairos cloud-config"
	return s
}

var (
	usersType    = reflect.TypeFor[Users]()
	commandsType = reflect.TypeFor[Commands]()
	afterType    = reflect.TypeFor[After]()
)

func schemaOf(t reflect.Type, seen map[reflect.Type]bool) map[string]any {
	switch t {
	case usersType: // a list of users, or a mapping of name to user
		user := schemaOf(reflect.TypeFor[User](), seen)
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "array", "items": user},
			map[string]any{"type": "object", "additionalProperties": user},
		}}
	case commandsType: // lines, or lists of arguments
		return map[string]any{"type": "array", "items": map[string]any{"anyOf": []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		}}}
	case afterType: // {name: x}, or x
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
		}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), seen)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), seen)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), seen)}
	case reflect.Struct:
		props := map[string]any{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			if _, unsupported := f.Tag.Lookup("unsupported"); unsupported {
				continue
			}
			props[name] = schemaOf(f.Type, seen)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{} // any value
}
