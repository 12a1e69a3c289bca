package cli

// SetRewriteHook sets the checkpoint tool's AfterWrite hook (see rewriteHook) for the
// rest of the process. Only the test binary's helper process calls it.
func SetRewriteHook(f func(task string, n int)) { rewriteHook = f }
