#include "static_binding.hpp"

#include <memory>
#include <stdexcept>

#include "covet/app/static_files.hpp"

namespace covet_py {

void add_static_mount(covet::App& app, StaticMountSpec spec) {
    covet::app::StaticFilesOptions options;
    options.directories = std::move(spec.directories);
    options.html = spec.html;
    options.follow_symlink = spec.follow_symlink;
    options.precompressed = spec.precompressed;
    options.fallback = std::move(spec.fallback);
    covet::app::MediaTypes types = covet::app::MediaTypes::defaults();
    if (!spec.types.empty()) {
        types.types.clear();
        for (auto& [ext, type] : spec.types) types.types.emplace(std::move(ext), std::move(type));
        types.suffixes.clear();
        for (auto& [from, to] : spec.suffixes) types.suffixes.emplace(std::move(from), std::move(to));
        types.encodings = std::move(spec.encodings);
    }
    try {
        auto files = std::make_shared<const covet::app::StaticFiles>(std::move(options), std::move(types));
        covet::app::mount_static(app, spec.prefix, std::move(files));
    } catch (const std::exception& e) {
        throw pybind11::value_error(e.what());
    }
}

}  // namespace covet_py
