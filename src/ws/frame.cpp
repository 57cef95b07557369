// WebSocket frame header parsing and frame writing (RFC 6455 §5.2).
#include "covet/ws/frame.hpp"

#include <cstring>

namespace covet::ws {

std::size_t FrameParser::parse(std::span<const char> in) noexcept {
    std::size_t used = 0;
    while (!ready_ && !error_ && used < in.size()) {
        const std::size_t take = std::min(need_ - have_, in.size() - used);
        std::memcpy(buf_ + have_, in.data() + used, take);
        have_ += take;
        used += take;
        if (have_ < need_) break;
        if (need_ == 2) {
            if (!check_first_two()) break;
            const unsigned len7 = buf_[1] & 0x7F;
            need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
            continue;
        }
        finish();
    }
    return used;
}

bool FrameParser::check_first_two() noexcept {
    const unsigned char b0 = buf_[0], b1 = buf_[1];
    const auto op = static_cast<Opcode>(b0 & 0x0F);
    header_.fin = (b0 & 0x80) != 0;
    header_.rsv1 = (b0 & 0x40) != 0;
    header_.opcode = op;
    switch (op) {
        case Opcode::continuation:
        case Opcode::text:
        case Opcode::binary:
        case Opcode::close:
        case Opcode::ping:
        case Opcode::pong: break;
        default: error_ = "reserved opcode"; return false;
    }
    if (b0 & 0x30)
        error_ = "reserved bits set";
    else if (header_.rsv1 && (!allow_rsv1_ || (op != Opcode::text && op != Opcode::binary)))
        error_ = allow_rsv1_ ? "RSV1 outside a message's first frame" : "RSV1 set without an extension";
    else if (!(b1 & 0x80))
        error_ = "client frames must be masked";
    else if (is_control(op) && !header_.fin)
        error_ = "fragmented control frame";
    else if (is_control(op) && (b1 & 0x7F) > 125)
        error_ = "control frame longer than 125 bytes";
    else if (op == Opcode::continuation && !in_message_)
        error_ = "continuation frame without a message";
    else if ((op == Opcode::text || op == Opcode::binary) && in_message_)
        error_ = "new message inside a fragmented one";
    return error_ == nullptr;
}

void FrameParser::finish() noexcept {
    const unsigned len7 = buf_[1] & 0x7F;
    std::size_t pos = 2;
    std::uint64_t len = len7;
    if (len7 == 126) {
        len = (std::uint64_t{buf_[2]} << 8) | buf_[3];
        pos = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | buf_[2 + i];
        pos = 10;
        if (len >> 63) {
            error_ = "frame length with the most significant bit set";
            return;
        }
    }
    header_.length = len;
    std::memcpy(header_.mask, buf_ + pos, 4);
    if (!is_control(header_.opcode)) in_message_ = !header_.fin;
    ready_ = true;
    need_ = 2;
}

void unmask(char* data, std::size_t n, const std::uint8_t (&mask)[4], std::uint64_t offset) noexcept {
    // The mask rotated so that key[0] applies to data[0]; then 8 bytes per step.
    std::uint8_t key[8];
    for (int i = 0; i < 8; ++i) key[i] = mask[(offset + static_cast<std::uint64_t>(i)) & 3];
    std::uint64_t k;
    std::memcpy(&k, key, 8);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, data + i, 8);
        w ^= k;
        std::memcpy(data + i, &w, 8);
    }
    for (; i < n; ++i) data[i] = static_cast<char>(data[i] ^ key[i & 7]);
}

void append_frame_header(std::string& out, Opcode opcode, std::uint64_t length, bool fin, bool rsv1) {
    char h[10];
    std::size_t n = 2;
    h[0] = static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(opcode));
    if (length < 126) {
        h[1] = static_cast<char>(length);
    } else if (length <= 0xFFFF) {
        h[1] = 126;
        h[2] = static_cast<char>(length >> 8);
        h[3] = static_cast<char>(length);
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<char>(length >> (56 - 8 * i));
        n = 10;
    }
    out.append(h, n);
}

void write_frame(io::OutputQueue& q, Opcode opcode, std::string_view payload, bool rsv1) {
    std::string& tail = q.tail();
    const std::size_t before = tail.size();
    append_frame_header(tail, opcode, payload.size(), true, rsv1);
    tail.append(payload);
    q.note_tail_growth(tail.size() - before);
}

std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept {
    if (s.size() <= max) return s;
    std::size_t n = max;
    // Back off continuation bytes (10xxxxxx) so the cut lands before a lead byte.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

void write_close(io::OutputQueue& q, std::uint16_t code, std::string_view reason) {
    if (code == 0) return write_frame(q, Opcode::close, {});
    char payload[125];
    payload[0] = static_cast<char>(code >> 8);
    payload[1] = static_cast<char>(code);
    const std::string_view r = utf8_prefix(reason, 123);
    if (!r.empty()) std::memcpy(payload + 2, r.data(), r.size());
    write_frame(q, Opcode::close, std::string_view(payload, 2 + r.size()));
}

}  // namespace covet::ws
