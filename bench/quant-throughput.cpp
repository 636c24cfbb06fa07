// CPU RTN quantization throughput on a synthetic BF16 "model" that lives in a memory-mapped file,
// the way `rtnq quantize` reads real checkpoints. Prints one row per (threads, bits) plus the
// machine's plain memcpy bandwidth from the same mapping, which bounds what any quantizer can do.
//
//   bench-quant-throughput [--size-gb 2] [--dir /tmp] [--threads 1,2] [--bits 4,8] [--group 128]
//                          [--reps 3] [--keep] [--reuse-memory]
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/atomic-output.h"
#include "core/mapped-file.h"
#include "core/thread-pool.h"
#include "rtnq/quant.h"

namespace fs = std::filesystem;
using namespace rtnq;

namespace {

struct Options {
  double size_gb = 2.0;
  fs::path dir = fs::temp_directory_path();
  std::vector<int> threads = {1, 2};
  std::vector<int> bits = {4, 8};
  int64_t group = 128;
  int reps = 3;
  bool keep = false;
  bool reuse_memory = false;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::atoi(s.substr(pos, comma - pos).c_str()));
    pos = comma + 1;
  }
  return out;
}

bool parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--size-gb") o->size_gb = std::atof(next().c_str());
    else if (a == "--dir") o->dir = next();
    else if (a == "--threads") o->threads = parse_list(next());
    else if (a == "--bits") o->bits = parse_list(next());
    else if (a == "--group") o->group = std::atoll(next().c_str());
    else if (a == "--reps") o->reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--keep") o->keep = true;
    else if (a == "--reuse-memory") o->reuse_memory = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--size-gb G] [--dir D] [--threads 1,2] [--bits 4,8] [--group 128] [--reps 3] [--keep]\n",
                   argv[0]);
      return false;
    }
  }
  return o->size_gb > 0 && o->reps > 0;
}

struct Tensor {
  std::string name;
  int64_t rows, cols;
  size_t offset;  // bytes into the file
  size_t nbytes() const { return size_t(rows * cols) * 2; }
};

// Llama-3-8B-like projections, repeated layer by layer until the size budget is used.
std::vector<Tensor> plan_tensors(double size_gb) {
  struct Shape {
    const char* name;
    int64_t rows, cols;
  };
  const Shape layer[] = {{"q_proj", 4096, 4096},   {"k_proj", 1024, 4096}, {"v_proj", 1024, 4096},
                         {"o_proj", 4096, 4096},   {"gate_proj", 14336, 4096}, {"up_proj", 14336, 4096},
                         {"down_proj", 4096, 14336}};
  const size_t budget = size_t(size_gb * 1e9);
  std::vector<Tensor> out;
  size_t offset = 0;
  for (int l = 0;; ++l)
    for (const Shape& s : layer) {
      const size_t n = size_t(s.rows * s.cols) * 2;
      if (!out.empty() && offset + n > budget) return out;
      out.push_back({fmt::format("model.layers.{}.{}.weight", l, s.name), s.rows, s.cols, offset});
      offset += n;
    }
}

// Normal(0, 0.02) weights in BF16. Drawing a billion normals one by one would dominate the run, so
// we draw 64K of them once and index the table with a fast generator: the histogram is normal.
Status write_model(const fs::path& path, const std::vector<Tensor>& tensors, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<uint16_t> table(65536);
  for (auto& t : table) t = f32_to_bf16(normal(rng));
  uint64_t x = seed | 1;
  auto next = [&x] {  // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545F4914F6CDD1DULL;
  };
  RTNQ_ASSIGN_OR_RETURN(FileWriter w, FileWriter::open(path));
  std::vector<uint16_t> chunk(size_t(1) << 24);  // 32 MB
  for (const Tensor& t : tensors) {
    size_t left = size_t(t.rows * t.cols);
    while (left > 0) {
      const size_t n = std::min(left, chunk.size());
      size_t i = 0;
      for (; i + 4 <= n; i += 4) {
        const uint64_t r = next();
        chunk[i] = table[r & 0xffff];
        chunk[i + 1] = table[(r >> 16) & 0xffff];
        chunk[i + 2] = table[(r >> 32) & 0xffff];
        chunk[i + 3] = table[r >> 48];
      }
      for (; i < n; ++i) chunk[i] = table[next() >> 48];
      RTNQ_RETURN_IF_ERROR(w.append(chunk.data(), n * 2));
      left -= n;
    }
  }
  return w.close();
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// User + system CPU seconds of the whole process (all threads): on a shared, loaded machine the
// wall clock measures the neighbours, CPU time still measures us.
double cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double peak_rss_gb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0 / 1e9;  // Linux reports KiB
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_args(argc, argv, &opt)) return 2;
  if (opt.reuse_memory) {
    // Keep freed output buffers in the heap instead of returning them to the kernel, so the next
    // tensor's packed output does not pay for fresh zeroed pages (page faults show up as sys time).
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }

  const std::vector<Tensor> tensors = plan_tensors(opt.size_gb);
  size_t total_bytes = 0;
  int64_t total_weights = 0;
  for (const Tensor& t : tensors) {
    total_bytes += t.nbytes();
    total_weights += t.rows * t.cols;
  }
  const fs::path path = opt.dir / fmt::format("rtnq-bench-{}.bf16", ::getpid());
  std::printf("# bench-quant-throughput\n");
  std::printf("machine: %s, %u hardware threads, load average %s\n", cpu_model().c_str(),
              std::thread::hardware_concurrency(), load_average().c_str());
  std::printf("model: %zu BF16 tensors (Llama-3-8B shapes), %.3f G weights, %.2f GB at %s\n", tensors.size(),
              double(total_weights) / 1e9, double(total_bytes) / 1e9, path.c_str());

  double t0 = now_s();
  if (Status st = write_model(path, tensors, std::random_device{}()); !st.is_ok()) {
    std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
    return 1;
  }
  std::printf("generated in %.1f s\n", now_s() - t0);

  auto mapped = MappedFile::open(path);
  if (!mapped) {
    std::fprintf(stderr, "error: %s\n", mapped.status().to_string().c_str());
    return 1;
  }
  std::shared_ptr<const MappedFile> file = *mapped;

  // Plain memcpy of the mapping: the first pass faults the pages in (page cache warm after the
  // write), the later ones measure read bandwidth, the bound for a one-pass quantizer.
  std::vector<uint8_t> sink(size_t(64) << 20);
  std::vector<double> copy_times;
  for (int rep = 0; rep < 1 + opt.reps; ++rep) {
    t0 = now_s();
    for (size_t off = 0; off < file->size(); off += sink.size())
      std::memcpy(sink.data(), file->data() + off, std::min(sink.size(), file->size() - off));
    if (rep > 0) copy_times.push_back(now_s() - t0);
  }
  const double copy_gbs = double(file->size()) / median(copy_times) / 1e9;
  std::printf("memcpy from the mapping (1 thread): %.2f GB/s = %.2f G BF16 weights/s\n\n", copy_gbs, copy_gbs / 2);

  std::printf("| threads | bits | group | time (s) | G weights/s | G weights/s/core | GB/s input | CPU s | G weights/CPU-s | peak RSS (GB) |\n");
  std::printf("|--------:|-----:|------:|---------:|------------:|-----------------:|-----------:|------:|----------------:|--------------:|\n");
  double checksum = 0.0;
  for (int threads : opt.threads) {
    ThreadPool pool(threads);
    for (int bits : opt.bits) {
      std::vector<double> times, cpu_times;
      for (int rep = 0; rep < opt.reps; ++rep) {
        t0 = now_s();
        const double c0 = cpu_s();
        for (const Tensor& t : tensors) {
          TensorView v;
          v.info = TensorInfo{t.name, DType::kBF16, {t.rows, t.cols}};
          v.data = file->data() + t.offset;
          v.keepalive = file;
          auto q = rtn_quantize(v, bits, opt.group, DType::kBF16, &pool);
          if (!q) {
            std::fprintf(stderr, "error: %s\n", q.status().to_string().c_str());
            return 1;
          }
          checksum += q->relative_rms_error();
        }
        times.push_back(now_s() - t0);
        cpu_times.push_back(cpu_s() - c0);
      }
      const double t = median(times);
      const double gw = double(total_weights) / t / 1e9;
      const double c = median(cpu_times);
      std::printf("| %7d | %4d | %5lld | %8.3f | %11.3f | %16.3f | %10.2f | %5.2f | %15.3f | %13.2f |\n", threads, bits,
                  static_cast<long long>(opt.group), t, gw, gw / threads, double(total_bytes) / t / 1e9, c,
                  double(total_weights) / c / 1e9, peak_rss_gb());
      std::fflush(stdout);
    }
  }
  std::printf("\n(time: median of %d passes over all tensors; peak RSS includes the %.2f GB mapping once touched; "
              "mean relative RMS error %.4f)\n",
              opt.reps, double(total_bytes) / 1e9,
              checksum / double(tensors.size() * opt.threads.size() * opt.bits.size() * size_t(opt.reps)));
  file.reset();
  if (!opt.keep) fs::remove(path);
  return 0;
}
