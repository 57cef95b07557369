// The HTTP/1.x request reader alone (src/http1/request_reader.cpp, llhttp underneath), as a differential
// check: the same bytes read whole and read in the pieces the first input byte chooses must give the same
// requests (method, target, headers, body), whatever the split; buffers are scribbled over once consumed and
// reused after keep(), so a request that still views into consumed input shows.
// Properties: no crash, leak or sanitizer report; an error is final; the requests read do not depend on the
// split (a refusal's status may: a split can show an incomplete head over a limit before the error that the
// whole input shows).
#include <cstdint>
#include <string>
#include <vector>

#include "covet/http1/request_reader.hpp"
#include "fuzz_support.hpp"

namespace {

using covet::http1::RequestReader;
using covet_fuzz::check;

covet::http1::ReaderLimits limits() {
    covet::http1::ReaderLimits l;
    l.max_header_bytes = 2048;
    l.max_url_bytes = 512;
    l.max_headers = 16;
    l.max_body_bytes = 4096;
    return l;
}

// The requests read from `input` fed in pieces, one line each (an error ends the list).
std::vector<std::string> read_all(std::string_view input, covet_fuzz::Splitter split) {
    RequestReader reader(limits());
    std::vector<std::string> got;
    std::string buf;
    bool in_request = false;
    const auto scribble_and_reuse = [&] {
        reader.keep(buf);
        std::string fresh = buf;
        buf.assign(buf.size(), '#');
        buf.swap(fresh);
    };
    for (std::size_t from = 0; from < input.size();) {
        const std::size_t n = split.next(input.size() - from);
        scribble_and_reuse();
        buf.append(input.substr(from, n));
        from += n;
        while (true) {
            const RequestReader::Result r = reader.feed(buf);
            check(r.used <= buf.size(), "the reader used more than it was given");
            if (r.event == RequestReader::Event::error) {
                check(reader.error().status >= 400, "a refusal without an error status");
                check(reader.feed(buf).event == RequestReader::Event::error, "an error is not final");
                return got;
            }
            if (r.event == RequestReader::Event::head) {
                check(!in_request, "a second head before the first request completed");
                in_request = true;
            }
            if (r.event == RequestReader::Event::complete) {
                in_request = false;
                const covet::Request& q = reader.request();
                std::string line(q.method_name());
                line.append(" ").append(q.target()).append(" ").append(q.body());
                for (const covet::Header& h : q.headers()) line.append(" ").append(h.name).append(":").append(h.value);
                got.push_back(std::move(line));
            }
            scribble_and_reuse();
            buf.erase(0, r.used);
            if (r.event == RequestReader::Event::more) break;
        }
    }
    return got;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    const std::uint8_t seed = in.byte();
    const std::vector<std::string> whole = read_all(in.rest(), covet_fuzz::Splitter(0));
    const std::vector<std::string> pieces = read_all(in.rest(), covet_fuzz::Splitter(seed | 1));
    check(whole == pieces, "the requests read depend on how the input was split");
    return 0;
}
