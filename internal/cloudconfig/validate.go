package cloudconfig

// Validate checks a config file exactly as the node reads it: it is Parse,
// so a file without errors here is one boot applies whole, and a file with
// errors is one boot refuses (and says why) rather than half-applies.
func Validate(file string, data []byte) Diagnostics {
	_, d := Parse(file, data)
	return d
}
