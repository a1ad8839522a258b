#include "gang/baserock_meta.hpp"
#include "util/path_name.hpp"

#include <nlohmann/json.hpp>

namespace gang {

std::string baserock_meta_path(const std::string& name) { return "baserock/" + name_to_leaf(name) + ".meta"; }

std::string encode_baserock_meta(const BaserockMeta& meta) {
  nlohmann::ordered_json products = nlohmann::ordered_json::array();
  for (const auto& p : meta.products)
    products.push_back({{"artifact", p.artifact}, {"components", p.components}});
  nlohmann::ordered_json out;
  out["products"] = std::move(products);
  if (!meta.repo.empty()) out["repo"] = meta.repo;
  if (!meta.ref.empty()) out["ref"] = meta.ref;
  if (!meta.cache.empty()) out["cache"] = meta.cache;
  // Invalid UTF-8 in a path (paths are bytes) is kept as it is, not refused.
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::ignore) + "\n";
}

Result<BaserockMeta> decode_baserock_meta(std::string_view text, const std::string& what) {
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return make_error(what + ": not a JSON object");
  BaserockMeta meta;
  auto string_field = [&](const char* name, std::string& into) -> bool {
    auto it = json.find(name);
    if (it == json.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    into = it->get<std::string>();
    return true;
  };
  if (!string_field("repo", meta.repo) || !string_field("ref", meta.ref) ||
      !string_field("cache", meta.cache))
    return make_error(what + ": repo, ref and cache must be strings");
  auto products = json.find("products");
  if (products == json.end() || !products->is_array())
    return make_error(what + ": no products list");
  for (const auto& p : *products) {
    if (!p.is_object() || !p.contains("artifact") || !p["artifact"].is_string())
      return make_error(what + ": a product without an artifact name");
    Product product{p["artifact"].get<std::string>(), {}};
    for (const char* list : {"components", "files"}) {
      if (!p.contains(list)) continue;
      if (!p[list].is_array()) return make_error(what + ": " + list + " is not a list");
      for (const auto& c : p[list]) {
        if (!c.is_string()) return make_error(what + ": a component that is not a string");
        product.components.push_back(c.get<std::string>());
      }
    }
    meta.products.push_back(std::move(product));
  }
  return meta;
}

}  // namespace gang
