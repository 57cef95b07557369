#include "file_send.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "covet/io/large_buffers.hpp"

namespace covet_py {

covet::io::FileRegion open_file_region(const std::string& path, std::uint64_t offset, std::uint64_t count) {
    namespace py = pybind11;
    int fd = -1, error = 0;
    struct stat st {};
    {
        py::gil_scoped_release release;
        // O_NONBLOCK: a FIFO at `path` must not stop the thread (it is refused below).
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            error = errno;
        else if (::fstat(fd, &st) != 0)
            error = errno;
    }
    covet::io::FileRegion file(fd, offset, count);  // owns fd from here
    if (error) {
        errno = error;
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path.c_str());
        throw py::error_already_set();
    }
    if (!S_ISREG(st.st_mode))
        throw py::value_error("a FileResponse body must be a regular file; '" + path + "' is not");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (offset > size || count > size - offset)
        throw py::value_error("the FileResponse region (" + std::to_string(count) + " bytes from offset " +
                              std::to_string(offset) + ") runs past the end of '" + path + "' (" +
                              std::to_string(size) + " bytes): the file changed after the response was made");
    return file;
}

std::string body_bytes(const pybind11::bytes& body) {
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (PyBytes_AsStringAndSize(body.ptr(), &data, &size) != 0) throw pybind11::error_already_set();
    const auto n = static_cast<std::size_t>(size);
    if (n < covet::io::LargeBuffers::min_capacity) return std::string(data, n);
    std::string out = covet::io::LargeBuffers::take(n);
    out.assign(data, n);
    return out;
}

}  // namespace covet_py
