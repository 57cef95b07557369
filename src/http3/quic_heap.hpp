// ngtcp2's and nghttp3's allocations on the worker thread (private to src/http3): small blocks come from and go
// back to thread-local free lists by size class. A busy server's QUIC stack makes and frees thousands of small
// objects in bursts (a read of 64 datagrams can end thousands of streams), and glibc's malloc spent a fifth of the
// server's time consolidating and splitting chunks for them. Large blocks go straight to malloc; each list keeps
// a bounded number of blocks.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

namespace covet::http3::detail {

const ngtcp2_mem* quic_heap_ngtcp2() noexcept;
const nghttp3_mem* quic_heap_nghttp3() noexcept;

}  // namespace covet::http3::detail
