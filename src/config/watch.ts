// Hot reload (server.watchConfig): tells the caller, once per burst, that the config file may have changed.
import { watch } from 'node:fs'
import { basename, dirname } from 'node:path'

/** Quiet time after the last file-system event before onChange runs, in milliseconds. */
export const DEFAULT_WATCH_DEBOUNCE_MS = 500

/**
 * What a Kubernetes ConfigMap update touches: the mount holds `gateway.yaml -> ..data/gateway.yaml` and
 * `..data -> ..<timestamp>`, and the kubelet swaps versions by making the symlink `..data_tmp` and renaming it over
 * `..data`, so the file's own name never sees an event.
 */
const CONFIG_MAP_LINKS = ['..data', '..data_tmp'] as const

export interface WatchConfigOptions {
  /**
   * Quiet time after the last event before onChange runs, in milliseconds: an editor's save or a ConfigMap swap is
   * several events, and one reload is wanted.
   * @default 500
   */
  debounceMs?: number
}

export interface ConfigWatcher {
  /** Stops watching and drops a pending call; safe to call more than once. */
  close: () => void
}

/**
 * Calls `onChange` `debounceMs` after the last of a burst of changes to `file`. It does not read the file: whether the
 * content really changed is the caller's check. Throws only at the start (a bad option, a missing directory).
 */
export function watchConfigFile (file: string, onChange: () => void, options: WatchConfigOptions = {}): ConfigWatcher {
  const { debounceMs = DEFAULT_WATCH_DEBOUNCE_MS } = options
  if (!Number.isFinite(debounceMs) || debounceMs < 0) {
    throw new TypeError(`expected options.debounceMs to be a number of milliseconds >= 0, got ${String(debounceMs)}`)
  }
  const relevant = new Set<string>([basename(file), ...CONFIG_MAP_LINKS])
  let timer: NodeJS.Timeout | undefined
  let closed = false

  // The directory, not the file: an editor saves by renaming a new file over the old one and a ConfigMap update swaps
  // a symlink, and a watch on the file itself follows the old inode and goes quiet after the first such save.
  const watcher = watch(dirname(file), (_event, filename) => {
    // close() stops the handle, so no event should follow it; if one ever did, a reload after close() is not wanted.
    if (closed) return
    // Some platforms give no file name; then any event in the directory may be ours.
    if (filename !== null && !relevant.has(filename)) return
    clearTimeout(timer)
    // unref: a reload is not a reason to keep the process alive; the gateway's listening server keeps it alive anyway,
    // and a process that is exiting has no use for a new config.
    timer = setTimeout(() => {
      timer = undefined
      onChange()
    }, debounceMs).unref()
  })
  // unref for the same reason as the timer: the watcher alone must not hold an exiting process open.
  watcher.unref()

  const close = (): void => {
    if (closed) return
    closed = true
    clearTimeout(timer)
    timer = undefined
    watcher.close()
  }
  // An 'error' (the directory removed, on some platforms) would crash the process if unhandled, and a reload feature
  // must never take the gateway down: the running config stays valid, so close this watcher for good and keep serving.
  watcher.on('error', close)

  return { close }
}
