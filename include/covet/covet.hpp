// Everything a native application needs.
#pragma once

#include "covet/app/app.hpp"
#include "covet/app/static_files.hpp"
#include "covet/log.hpp"
#include "covet/middleware/access_log.hpp"
#include "covet/middleware/request_id.hpp"
#include "covet/net/tls_context.hpp"
#include "covet/trace/middleware.hpp"
#include "covet/ws/hub.hpp"
#include "covet/ws/websocket.hpp"
