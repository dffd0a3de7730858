//! Soundness: the installed environment and the warm daemon (editable plugins, .pth modules, site-packages edits, preloaded modules).

#[allow(unused_imports)]
use super::common;
