// Image folders (data.dataset: folder): DIR/train/<class>/* and DIR/val/<class>/*, JPEG or PNG,
// decoded while the pipeline trains (bll/data/image_source.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bll/config.h"
#include "bll/data/image_source.h"

namespace bll {

// One split's files and labels; a label indexes `classes` (the class folders' names, sorted).
struct ImageFolder {
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t size() const { return int64_t(files.size()); }
};

// Lists a split's folder: every sub-folder is a class, every .jpg, .jpeg or .png file in it (any
// case) a sample, in name order. With `classes` (the training split's), the split must use those
// only. Throws DataError naming the path: no such folder, a class folder without images, a class
// the training split does not have.
ImageFolder list_image_folder(const std::string& dir, const std::vector<std::string>* classes = nullptr);

// The training and validation splits of `dir` (its train/ and val/).
struct ImageFolders {
  ImageFolder train, val;
};
ImageFolders list_image_folders(const std::string& dir);

// The files of `folder` as a store: each image decoded into `channels` channels.
std::shared_ptr<const ImageStore> folder_store(ImageFolder folder, int64_t channels);

}  // namespace bll
