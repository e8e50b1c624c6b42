// Image folders: listing the classes and files of each split, and the store that decodes them.
#include "bll/data/folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "bll/data/images.h"
#include "bll/error.h"

namespace bll {
namespace fs = std::filesystem;
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  if (ec) throw DataError(dir.string() + ": cannot list folder (" + ec.message() + ")");
  std::sort(entries.begin(), entries.end());
  return entries;
}

// The images of a folder, decoded on demand.
class FolderStore : public ImageStore {
 public:
  FolderStore(ImageFolder folder, int64_t channels) : folder_(std::move(folder)), channels_(channels) {}
  int64_t size() const override { return folder_.size(); }
  int64_t label(int64_t i) const override { return folder_.labels[size_t(i)]; }
  Image image(int64_t i) const override { return decode_image(folder_.files[size_t(i)], channels_); }
  std::string name(int64_t i) const override { return folder_.files[size_t(i)]; }

 private:
  ImageFolder folder_;
  int64_t channels_;
};

}  // namespace

ImageFolder list_image_folder(const std::string& dir, const std::vector<std::string>* classes) {
  if (!fs::is_directory(dir))
    throw DataError(dir + ": no such folder (an image folder holds train/ and val/, each with one folder per class)");
  ImageFolder f;
  for (const auto& sub : sorted_entries(dir)) {
    if (!fs::is_directory(sub)) continue;
    const std::string name = sub.filename().string();
    int64_t label = int64_t(f.classes.size());
    if (classes) {
      const auto it = std::find(classes->begin(), classes->end(), name);
      if (it == classes->end()) throw DataError(sub.string() + ": class '" + name + "' is not a class of the training split");
      label = int64_t(it - classes->begin());
    }
    f.classes.push_back(name);
    int64_t images = 0;
    for (const auto& file : sorted_entries(sub))
      if (is_image_file(file) && fs::is_regular_file(file)) {
        f.files.push_back(file.string());
        f.labels.push_back(label);
        ++images;
      }
    if (images == 0) throw DataError(sub.string() + ": no JPEG or PNG images in this class folder");
  }
  if (f.classes.empty()) throw DataError(dir + ": no class folders (one sub-folder of images per class)");
  if (classes) f.classes = *classes;
  return f;
}

ImageFolders list_image_folders(const std::string& dir) {
  ImageFolders s;
  s.train = list_image_folder((fs::path(dir) / "train").string());
  s.val = list_image_folder((fs::path(dir) / "val").string(), &s.train.classes);
  return s;
}

std::shared_ptr<const ImageStore> folder_store(ImageFolder folder, int64_t channels) {
  return std::make_shared<FolderStore>(std::move(folder), channels);
}

}  // namespace bll
