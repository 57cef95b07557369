// Everything a native application needs.
#pragma once

#include "covet/app/app.hpp"
#include "covet/log.hpp"
#include "covet/middleware/access_log.hpp"
#include "covet/middleware/request_id.hpp"
