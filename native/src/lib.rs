//! `rpytest_native`: the part of rpytest's session recorder that runs as
//! native code inside the user's interpreter (any CPython >= 3.9, one abi3
//! module for all).
//!
//! * An audit hook (`PySys_AddAuditHook`) that compares each event's name
//!   with the names the recorder listens to, in Rust, and calls the
//!   recorder's Python function `(event, args)` only for those: the other
//!   events of a session (`builtins.id`, `object.__getattr__`, `compile`,
//!   `exec`, ... dozens per test) cost a string comparison instead of a
//!   Python call. The callback runs with tracing paused, as CPython runs a
//!   Python audit hook, so debuggers and profilers never see its frames.
//! * A call recorder: a C profile function (`PyEval_SetProfile`) on the
//!   calling thread that keeps each distinct code object entered.
//!
//! Functions of the C API that are not in the limited API are declared here
//! and resolved from the running interpreter when the module is loaded
//! (every CPython >= 3.9 exports them); `PyThreadState_EnterTracing` (3.11+)
//! is looked up at run time, and without it the audit hook is not offered.
//!
//! All state lives in statics touched only with the GIL held (audit hooks,
//! profile functions and module functions are all called with it).

#![allow(non_snake_case, clippy::missing_safety_doc)]

use pyo3_ffi::*;
use std::cell::UnsafeCell;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

type AuditHook = unsafe extern "C" fn(*const c_char, *mut PyObject, *mut c_void) -> c_int;
type ProfileFunc = unsafe extern "C" fn(*mut PyObject, *mut c_void, c_int, *mut PyObject) -> c_int;
type TstateFn = unsafe extern "C" fn(*mut PyThreadState);

extern "C" {
    fn PySys_AddAuditHook(hook: Option<AuditHook>, user_data: *mut c_void) -> c_int;
    fn PyEval_SetProfile(func: Option<ProfileFunc>, obj: *mut PyObject);
    fn PyFrame_GetCode(frame: *mut c_void) -> *mut PyObject;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

#[cfg(target_os = "macos")]
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;
#[cfg(not(target_os = "macos"))]
const RTLD_DEFAULT: *mut c_void = ptr::null_mut();

const PYTRACE_CALL: c_int = 0;

struct State {
    /// The recorder's `(event, args)` function; null: no events are passed on.
    callback: *mut PyObject,
    /// The event names passed on, each with its Python string.
    events: Vec<(Box<[u8]>, *mut PyObject)>,
    /// Bit n set: some name in `events` is n bytes long (n < 64).
    lengths: u64,
    hook_added: bool,
    enter_tracing: Option<TstateFn>,
    leave_tracing: Option<TstateFn>,
    /// Code objects entered since the last take, each holding a reference.
    calls: HashSet<usize>,
    /// Executed by `calls_active`: seeing its frame proves our profile
    /// function is the installed one.
    probe_code: *mut PyObject,
    probe_globals: *mut PyObject,
    probe_seen: bool,
}

struct Global(UnsafeCell<Option<State>>);
// Only touched with the GIL held.
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(None));

unsafe fn state() -> &'static mut State {
    let s = &mut *STATE.0.get();
    s.get_or_insert_with(|| State {
        callback: ptr::null_mut(),
        events: Vec::new(),
        lengths: 0,
        hook_added: false,
        enter_tracing: None,
        leave_tracing: None,
        calls: HashSet::new(),
        probe_code: ptr::null_mut(),
        probe_globals: ptr::null_mut(),
        probe_seen: false,
    })
}

unsafe fn py_bool(v: bool) -> *mut PyObject {
    let o = if v { Py_True() } else { Py_False() };
    Py_IncRef(o);
    o
}

// ---------------------------------------------------------------- audit hook

unsafe extern "C" fn audit_hook(
    event: *const c_char,
    args: *mut PyObject,
    _: *mut c_void,
) -> c_int {
    let st = state();
    if st.callback.is_null() || event.is_null() || args.is_null() {
        return 0;
    }
    let name = CStr::from_ptr(event).to_bytes();
    let n = name.len();
    if n >= 64 || st.lengths & (1u64 << n) == 0 {
        return 0;
    }
    let Some(&(_, py_name)) = st.events.iter().find(|(e, _)| **e == *name) else {
        return 0;
    };
    let callback = st.callback;
    Py_IncRef(callback);
    Py_IncRef(py_name);
    let tstate = PyThreadState_Get();
    if let Some(enter) = st.enter_tracing {
        enter(tstate);
    }
    let r = PyObject_CallFunctionObjArgs(callback, py_name, args, ptr::null_mut::<PyObject>());
    if let Some(leave) = state().leave_tracing {
        leave(tstate);
    }
    Py_DecRef(py_name);
    Py_DecRef(callback);
    if r.is_null() {
        return -1; // the callback's exception propagates, as a Python hook's would
    }
    Py_DecRef(r);
    0
}

/// `set_audit_hook(events, callback) -> bool`: from now on `callback(event,
/// args)` is called for each audit event whose name is in `events` (an
/// iterable of str). The C hook is added once per process (CPython never
/// removes one); later calls replace the names and the callback, and
/// `callback=None` stops passing events on. False (nothing added) when the
/// interpreter cannot pause tracing for the callback (before 3.11).
unsafe extern "C" fn set_audit_hook(_m: *mut PyObject, args: *mut PyObject) -> *mut PyObject {
    let mut events: *mut PyObject = ptr::null_mut();
    let mut callback: *mut PyObject = ptr::null_mut();
    if PyArg_ParseTuple(
        args,
        c"OO:set_audit_hook".as_ptr(),
        &mut events,
        &mut callback,
    ) == 0
    {
        return ptr::null_mut();
    }
    let st = state();
    if st.enter_tracing.is_none() {
        let enter = dlsym(RTLD_DEFAULT, c"PyThreadState_EnterTracing".as_ptr());
        let leave = dlsym(RTLD_DEFAULT, c"PyThreadState_LeaveTracing".as_ptr());
        if enter.is_null() || leave.is_null() {
            return py_bool(false);
        }
        st.enter_tracing = Some(std::mem::transmute::<*mut c_void, TstateFn>(enter));
        st.leave_tracing = Some(std::mem::transmute::<*mut c_void, TstateFn>(leave));
    }
    let mut names: Vec<(Box<[u8]>, *mut PyObject)> = Vec::new();
    let mut lengths = 0u64;
    if callback != Py_None() {
        let iter = PyObject_GetIter(events);
        if iter.is_null() {
            return ptr::null_mut();
        }
        loop {
            let item = PyIter_Next(iter);
            if item.is_null() {
                break;
            }
            // (PyUnicode_AsUTF8AndSize is in the limited API from 3.10 only)
            let encoded = PyUnicode_AsUTF8String(item);
            let mut utf8: *mut c_char = ptr::null_mut();
            let mut size: Py_ssize_t = 0;
            if encoded.is_null() || PyBytes_AsStringAndSize(encoded, &mut utf8, &mut size) != 0 {
                if !encoded.is_null() {
                    Py_DecRef(encoded);
                }
                Py_DecRef(item);
                break;
            }
            let bytes: Box<[u8]> =
                std::slice::from_raw_parts(utf8 as *const u8, size as usize).into();
            Py_DecRef(encoded);
            if bytes.len() < 64 {
                lengths |= 1u64 << bytes.len();
                names.push((bytes, item)); // keeps the reference
            } else {
                Py_DecRef(item);
            }
        }
        Py_DecRef(iter);
        if !PyErr_Occurred().is_null() {
            release_names(names);
            return ptr::null_mut();
        }
    }
    let old_callback = std::mem::replace(&mut st.callback, ptr::null_mut());
    let old_names = std::mem::take(&mut st.events);
    if callback != Py_None() {
        Py_IncRef(callback);
        st.callback = callback;
    }
    st.events = names;
    st.lengths = lengths;
    if !old_callback.is_null() {
        Py_DecRef(old_callback);
    }
    release_names(old_names);
    if !st.hook_added {
        if PySys_AddAuditHook(Some(audit_hook), ptr::null_mut()) != 0 {
            // A hook refused it (sys.addaudithook's event raised): nothing is
            // added, and the caller falls back to a Python hook.
            PyErr_Clear();
            return py_bool(false);
        }
        state().hook_added = true;
    }
    py_bool(true)
}

/// Drops the references an event-name list holds.
unsafe fn release_names(names: Vec<(Box<[u8]>, *mut PyObject)>) {
    for (_, o) in names {
        Py_DecRef(o);
    }
}

/// `audit_hook_added() -> bool`: whether this process has the C hook.
unsafe extern "C" fn audit_hook_added(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    py_bool(state().hook_added)
}

// ------------------------------------------------------------- call recorder

unsafe extern "C" fn profile(
    _obj: *mut PyObject,
    frame: *mut c_void,
    what: c_int,
    _arg: *mut PyObject,
) -> c_int {
    if what != PYTRACE_CALL || frame.is_null() {
        return 0;
    }
    let code = PyFrame_GetCode(frame);
    if code.is_null() {
        PyErr_Clear();
        return 0;
    }
    let st = state();
    if code == st.probe_code {
        st.probe_seen = true;
        Py_DecRef(code);
    } else if !st.calls.insert(code as usize) {
        Py_DecRef(code); // seen already: the set holds one reference
    }
    0
}

unsafe fn probe_ready(st: &mut State) -> bool {
    if !st.probe_code.is_null() {
        return true;
    }
    let code = Py_CompileString(
        c"None".as_ptr(),
        c"<rpytest_native probe>".as_ptr(),
        Py_eval_input,
    );
    if code.is_null() {
        return false;
    }
    let globals = PyDict_New();
    if globals.is_null()
        || PyDict_SetItemString(globals, c"__builtins__".as_ptr(), PyEval_GetBuiltins()) != 0
    {
        Py_DecRef(code);
        if !globals.is_null() {
            Py_DecRef(globals);
        }
        return false;
    }
    st.probe_code = code;
    st.probe_globals = globals;
    true
}

/// Whether our profile function is the calling thread's: runs the probe
/// code and sees whether the profile function saw it start.
unsafe fn active() -> Result<bool, ()> {
    let st = state();
    if !probe_ready(st) {
        return Err(());
    }
    st.probe_seen = false;
    let r = PyEval_EvalCode(st.probe_code, st.probe_globals, st.probe_globals);
    if r.is_null() {
        return Err(());
    }
    Py_DecRef(r);
    let st = state();
    let seen = st.probe_seen;
    st.probe_seen = false;
    Ok(seen)
}

/// `calls_start() -> bool`: records each distinct code object the calling
/// thread enters from now on (Python functions, generators resumed, module
/// and class bodies; not C functions) until `calls_stop`.
unsafe extern "C" fn calls_start(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    if !probe_ready(state()) {
        return ptr::null_mut();
    }
    set_profile(Some(profile))
}

/// Installs `func` (None: removes) as the calling thread's profile function:
/// True, or NULL with the exception set.
unsafe fn set_profile(func: Option<ProfileFunc>) -> *mut PyObject {
    PyEval_SetProfile(func, ptr::null_mut());
    if !PyErr_Occurred().is_null() {
        return ptr::null_mut();
    }
    py_bool(true)
}

/// `calls_stop() -> bool`: removes our profile function from the calling
/// thread if it is still the installed one (another one put in its place,
/// cProfile's or a test's, is left alone); says whether it was.
unsafe extern "C" fn calls_stop(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    match active() {
        Ok(true) => set_profile(None),
        Ok(false) => py_bool(false),
        Err(()) => ptr::null_mut(),
    }
}

/// `calls_active() -> bool`: whether our profile function is still the
/// calling thread's (sys.setprofile, cProfile or a test may have replaced it).
unsafe extern "C" fn calls_active(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    match active() {
        Ok(v) => py_bool(v),
        Err(()) => ptr::null_mut(),
    }
}

/// `calls_take() -> list[code]`: the code objects entered since the last
/// take (each once, in no particular order); forgets them.
unsafe extern "C" fn calls_take(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    let st = state();
    let taken: Vec<usize> = st.calls.drain().collect();
    let list = PyList_New(taken.len() as Py_ssize_t);
    if list.is_null() {
        for c in taken {
            Py_DecRef(c as *mut PyObject);
        }
        return ptr::null_mut();
    }
    for (i, c) in taken.into_iter().enumerate() {
        PyList_SetItem(list, i as Py_ssize_t, c as *mut PyObject); // steals the set's reference
    }
    list
}

// -------------------------------------------------------------------- module

static mut METHODS: [PyMethodDef; 7] = [
    PyMethodDef {
        ml_name: c"set_audit_hook".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: set_audit_hook },
        ml_flags: METH_VARARGS,
        ml_doc: c"set_audit_hook(events, callback) -> bool: pass the audit events named in `events` to callback(event, args) (None: stop); False when this interpreter cannot (before 3.11)".as_ptr(),
    },
    PyMethodDef {
        ml_name: c"audit_hook_added".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: audit_hook_added },
        ml_flags: METH_NOARGS,
        ml_doc: c"audit_hook_added() -> bool: whether this process has the native audit hook".as_ptr(),
    },
    PyMethodDef {
        ml_name: c"calls_start".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: calls_start },
        ml_flags: METH_NOARGS,
        ml_doc: c"calls_start() -> bool: record the code objects this thread enters".as_ptr(),
    },
    PyMethodDef {
        ml_name: c"calls_take".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: calls_take },
        ml_flags: METH_NOARGS,
        ml_doc: c"calls_take() -> list: the code objects entered since the last take; forgets them".as_ptr(),
    },
    PyMethodDef {
        ml_name: c"calls_stop".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: calls_stop },
        ml_flags: METH_NOARGS,
        ml_doc: c"calls_stop() -> bool: remove our profile function if it is still this thread's".as_ptr(),
    },
    PyMethodDef {
        ml_name: c"calls_active".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: calls_active },
        ml_flags: METH_NOARGS,
        ml_doc: c"calls_active() -> bool: whether our profile function is still this thread's".as_ptr(),
    },
    PyMethodDef::zeroed(),
];

static mut MODULE_DEF: PyModuleDef = PyModuleDef {
    m_base: PyModuleDef_HEAD_INIT,
    m_name: c"rpytest_native".as_ptr(),
    m_doc: c"rpytest's native recorder: a filtering audit hook and a call recorder.".as_ptr(),
    m_size: -1,
    m_methods: ptr::addr_of_mut!(METHODS) as *mut PyMethodDef,
    m_slots: ptr::null_mut(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

#[no_mangle]
pub unsafe extern "C" fn PyInit_rpytest_native() -> *mut PyObject {
    PyModule_Create(ptr::addr_of_mut!(MODULE_DEF))
}
