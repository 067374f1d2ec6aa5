# Declarations and one-line helpers the compiled modules share (cimported, compiled into each).

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    int PyUnicode_KIND(object s)
    void *PyUnicode_DATA(object s)
    bint Py_UNICODE_ISSPACE(Py_UCS4 c)
    Py_UCS4 PyUnicode_READ(int kind, void *data, Py_ssize_t index)


cdef extern from *:
    const char *COMPILED_SOURCE   # the digest of the module's own .pyx, which setup.py defines


cdef inline unsigned char _lower(unsigned char c) noexcept:
    return c + 32 if 65 <= c <= 90 else c
