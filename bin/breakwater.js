#!/usr/bin/env node
// The installed command: runs the compiled CLI (npm ci builds dist/ through the prepare script).
import { main } from '../dist/cli.js'

main(process.argv.slice(2))
