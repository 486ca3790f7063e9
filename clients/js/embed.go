// Package js is the panel SDK for CEP and UXP panels and browser pages:
// bridge.js (an ES2017 module), bridge.classic.js (the same code as a
// classic script that sets the global DccBridge, generated from bridge.js)
// and bridge.d.ts (their types). The bridge serves them under /sdk/.
package js

import "embed"

//go:generate go run gen.go

// Files holds bridge.js, bridge.classic.js and bridge.d.ts at its root.
// It is read-only and safe for concurrent use.
//
//go:embed bridge.js bridge.classic.js bridge.d.ts
var Files embed.FS
