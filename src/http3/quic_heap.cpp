#include "quic_heap.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace covet::http3::detail {
namespace {

constexpr std::size_t step = 16;     // size classes: 16, 32, ... 512 bytes
constexpr std::size_t classes = 32;  // blocks above 512 bytes are plain malloc
constexpr std::size_t max_kept = 4096;

// Before every block: its class (0: plain malloc) and its size, keeping the block 16-byte aligned.
struct alignas(16) Header {
    std::uint32_t size_class;
    std::uint32_t unused;
    std::size_t size;
};
static_assert(sizeof(Header) == 16);

struct FreeBlock {
    FreeBlock* next;
};

class Heap {
public:
    ~Heap() {
        for (FreeBlock* head : lists_)
            while (head) std::free(reinterpret_cast<Header*>(std::exchange(head, head->next)) - 1);
    }
    void* allocate(std::size_t size) noexcept {
        const std::size_t c = size == 0 ? 1 : (size + step - 1) / step;
        if (c > classes) return wrap(std::malloc(sizeof(Header) + size), 0, size);
        if (FreeBlock* b = lists_[c - 1]) {
            lists_[c - 1] = b->next;
            --counts_[c - 1];
            reinterpret_cast<Header*>(b)[-1].size = size;
            return b;
        }
        return wrap(std::malloc(sizeof(Header) + c * step), static_cast<std::uint32_t>(c), size);
    }
    void release(void* p) noexcept {
        if (!p) return;
        Header* h = static_cast<Header*>(p) - 1;
        const std::uint32_t c = h->size_class;
        if (c == 0 || counts_[c - 1] >= max_kept) return std::free(h);
        auto* b = static_cast<FreeBlock*>(p);
        b->next = lists_[c - 1];
        lists_[c - 1] = b;
        ++counts_[c - 1];
    }
    void* resize(void* p, std::size_t size) noexcept {
        if (!p) return allocate(size);
        Header* h = static_cast<Header*>(p) - 1;
        if (h->size_class != 0 && size <= h->size_class * step) {
            h->size = size;
            return p;
        }
        void* fresh = allocate(size);
        if (!fresh) return nullptr;
        std::memcpy(fresh, p, std::min(h->size, size));
        release(p);
        return fresh;
    }

private:
    static void* wrap(void* raw, std::uint32_t size_class, std::size_t size) noexcept {
        if (!raw) return nullptr;
        auto* h = static_cast<Header*>(raw);
        h->size_class = size_class;
        h->size = size;
        return h + 1;
    }
    std::array<FreeBlock*, classes> lists_{};
    std::array<std::size_t, classes> counts_{};
};

Heap& heap() noexcept {
    thread_local Heap h;
    return h;
}

void* heap_malloc(std::size_t size, void*) { return heap().allocate(size); }
void heap_free(void* p, void*) { heap().release(p); }
void* heap_calloc(std::size_t count, std::size_t size, void*) {
    if (size != 0 && count > SIZE_MAX / size) return nullptr;
    void* p = heap().allocate(count * size);
    if (p) std::memset(p, 0, count * size);
    return p;
}
void* heap_realloc(void* p, std::size_t size, void*) { return heap().resize(p, size); }

const ngtcp2_mem ngtcp2_heap{nullptr, heap_malloc, heap_free, heap_calloc, heap_realloc};
const nghttp3_mem nghttp3_heap{nullptr, heap_malloc, heap_free, heap_calloc, heap_realloc};

}  // namespace

const ngtcp2_mem* quic_heap_ngtcp2() noexcept { return &ngtcp2_heap; }
const nghttp3_mem* quic_heap_nghttp3() noexcept { return &nghttp3_heap; }

}  // namespace covet::http3::detail
