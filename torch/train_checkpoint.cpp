// torch/train_checkpoint.cpp — checkpoints: parameters and AdamW moments as safetensors, the
// trainer state as JSON with a CRC-32 per file, written into a temporary directory that is renamed
// into place, and a `latest` pointer replaced atomically (include/segrl/train.h,
// docs/torch-training.md).
//
//   <root>/step-000000000120/model.safetensors      parameters under their names
//   <root>/step-000000000120/optimizer.safetensors  exp_avg/<name>, exp_avg_sq/<name>, master/<name>
//   <root>/step-000000000120/trainer_state.json     steps, config, RNG states, user JSON, checksums
//   <root>/latest                                    "step-000000000120\n"
#include "train_impl.hpp"

#include "segrl/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <cjson/cJSON.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <unordered_set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const char *kModelFile = "model.safetensors";
const char *kOptimFile = "optimizer.safetensors";
const char *kStateFile = "trainer_state.json";
const char *kLatest = "latest";
const char *kCrcKey = "state_crc32";

// thrown inside the boundary for errors that already carry their full message
struct Fail {
    segrl_status status;
    std::string msg;
};
[[noreturn]] void fail(const std::string &msg) { throw Fail{SEGRL_ERR_INVALID, msg}; }
[[noreturn]] void fail_os(const std::string &what, const std::string &path) {
    fail(path + ": " + what + ": " + std::strerror(errno));
}

// ----------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF: the CRC
// of zlib, PNG and gzip). Slice-by-8: T[k][b] is the CRC of byte b followed by k zero bytes, so
// eight input bytes are folded with eight table look-ups.

struct CrcTables {
    uint32_t t[8][256];
    CrcTables() {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t c = b;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[0][b] = c;
        }
        for (uint32_t b = 0; b < 256; b++)
            for (int k = 1; k < 8; k++) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
};
const CrcTables &crc_tables() {
    static const CrcTables tables;
    return tables;
}

// running CRC: start with crc = 0, feed chunks
uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    const auto &T = crc_tables().t;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        c = T[7][lo & 0xFF] ^ T[6][(lo >> 8) & 0xFF] ^ T[5][(lo >> 16) & 0xFF] ^ T[4][lo >> 24] ^
            T[3][p[4]] ^ T[2][p[5]] ^ T[1][p[6]] ^ T[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--) c = T[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

std::string hex32(uint32_t v) {
    char b[9];
    std::snprintf(b, sizeof b, "%08x", v);
    return b;
}

// CRC-32 and size of a whole file
void file_crc(const std::string &path, uint32_t *crc, uint64_t *bytes) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_os("cannot open", path);
    std::vector<unsigned char> buf(1 << 20);
    uint32_t c = 0;
    uint64_t total = 0;
    for (;;) {
        ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            errno = e;
            fail_os("read failed", path);
        }
        if (r == 0) break;
        c = crc32_update(c, buf.data(), (size_t)r);
        total += (uint64_t)r;
    }
    ::close(fd);
    *crc = c;
    *bytes = total;
}

// ----------------------------------------------------------------------------
// small file-system helpers (POSIX: fsync of files and directories)

void fsync_path(const std::string &path, bool dir) {
    int fd = ::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) fail_os("cannot open for fsync", path);
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        fail_os("fsync failed", path);
    }
    ::close(fd);
}

// writes `text` to `path` through <path>.tmp + fsync + rename
void write_file_atomic(const std::string &path, const std::string &text) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail_os("cannot create", tmp);
    size_t off = 0;
    while (off < text.size()) {
        ssize_t w = ::write(fd, text.data() + off, text.size() - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            errno = e;
            fail_os("write failed", tmp);
        }
        off += (size_t)w;
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        errno = e;
        fail_os("fsync/close failed", tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        errno = e;
        fail_os("rename failed", path);
    }
}

std::string read_file(const std::string &path, size_t limit) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail_os("cannot open", path);
    std::string s;
    char buf[65536];
    size_t r;
    while ((r = std::fread(buf, 1, sizeof buf, f)) > 0) {
        s.append(buf, r);
        if (s.size() > limit) {
            std::fclose(f);
            fail(path + ": larger than " + std::to_string(limit) + " bytes");
        }
    }
    bool err = std::ferror(f);
    std::fclose(f);
    if (err) fail_os("read failed", path);
    return s;
}

std::string step_dir_name(int64_t step) {
    char b[32];
    std::snprintf(b, sizeof b, "step-%012lld", (long long)step);
    return b;
}

// "step-<digits>" -> step, or -1
int64_t parse_step_name(const std::string &name) {
    if (name.size() < 6 || name.compare(0, 5, "step-") != 0) return -1;
    int64_t v = 0;
    for (size_t i = 5; i < name.size(); i++) {
        char ch = name[i];
        if (ch < '0' || ch > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (ch - '0');
    }
    return v;
}

// the directory `latest` names under root ("" when there is no latest file)
std::string read_latest(const std::string &root) {
    std::string p = root + "/" + kLatest;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return "";
    std::string s = read_file(p, 4096);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    if (parse_step_name(s) < 0) fail(p + ": does not name a step-<N> directory (\"" + s + "\")");
    return s;
}

// ----------------------------------------------------------------------------
// tensors <-> safetensors

int32_t st_dtype_of(at::ScalarType s) {
    switch (s) {
    case at::kFloat: return SEGRL_ST_F32;
    case at::kHalf: return SEGRL_ST_F16;
    case at::kBFloat16: return SEGRL_ST_BF16;
    case at::kInt: return SEGRL_ST_I32;
    case at::kLong: return SEGRL_ST_I64;
    case at::kByte: return SEGRL_ST_U8;
    case at::kDouble: return SEGRL_ST_F64;
    default: return -1;
    }
}

bool scalar_of_st(int32_t d, at::ScalarType *out) {
    switch (d) {
    case SEGRL_ST_F32: *out = at::kFloat; return true;
    case SEGRL_ST_F16: *out = at::kHalf; return true;
    case SEGRL_ST_BF16: *out = at::kBFloat16; return true;
    case SEGRL_ST_I32: *out = at::kInt; return true;
    case SEGRL_ST_I64: *out = at::kLong; return true;
    case SEGRL_ST_U8: *out = at::kByte; return true;
    case SEGRL_ST_F64: *out = at::kDouble; return true;
    default: return false;
    }
}

// a list of named host tensors kept alive while the writer reads them
struct StList {
    std::vector<at::Tensor> host;
    std::vector<std::string> names;
    void add(const std::string &name, const at::Tensor &t) {
        host.push_back(t.detach().to(at::kCPU).contiguous());
        names.push_back(name);
    }
    void write(const std::string &path, const char *kind) {
        std::vector<segrl_st_tensor> v(host.size());
        for (size_t i = 0; i < host.size(); i++) {
            const at::Tensor &t = host[i];
            segrl_st_tensor &s = v[i];
            std::memset(&s, 0, sizeof s);
            s.name = names[i].c_str();
            s.dtype = st_dtype_of(t.scalar_type());
            if (s.dtype < 0) fail(names[i] + ": dtype " + c10::toString(t.scalar_type()) + " cannot be saved");
            if (t.dim() > SEGRL_ST_MAX_DIMS) fail(names[i] + ": more than 8 dimensions");
            s.ndim = (int32_t)t.dim();
            for (int64_t d = 0; d < t.dim(); d++) s.shape[d] = t.size(d);
            s.data = t.numel() ? t.data_ptr() : nullptr;
            s.nbytes = (size_t)t.numel() * t.element_size();
        }
        const char *keys[2] = {"format", "segrl"};
        const char *vals[2] = {"pt", kind};
        if (segrl_safetensors_write(path.c_str(), v.data(), (int64_t)v.size(), keys, vals, 2) != SEGRL_OK)
            throw Fail{SEGRL_ERR_INVALID, segrl_last_error()};
    }
};

// closes a reader on scope exit
struct StHandle {
    segrl_safetensors *h = nullptr;
    ~StHandle() { segrl_safetensors_close(h); }
};

// an at::Tensor over a tensor of an open file (no copy: valid while the handle is open)
at::Tensor from_st(const segrl_st_tensor &s) {
    at::ScalarType type;
    if (!scalar_of_st(s.dtype, &type)) fail(std::string(s.name) + ": unsupported dtype");
    std::vector<int64_t> shape(s.shape, s.shape + s.ndim);
    if (s.nbytes == 0) return at::empty(shape, at::TensorOptions().dtype(type));
    return at::from_blob(const_cast<void *>(s.data), shape, at::TensorOptions().dtype(type));
}

std::string shape_str(at::IntArrayRef s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + ")";
}

// looks up `name` in an open file and checks its shape against `want` (and, when f32_only, dtype)
at::Tensor find_checked(const StHandle &st, const std::string &file, const std::string &name,
                        at::IntArrayRef want, bool f32_only) {
    segrl_st_tensor s;
    if (segrl_safetensors_index(st.h, name.c_str()) < 0) fail(file + ": tensor \"" + name + "\" not found");
    if (segrl_safetensors_find(st.h, name.c_str(), &s) != SEGRL_OK) throw Fail{SEGRL_ERR_INVALID, segrl_last_error()};
    at::Tensor t = from_st(s);
    if (!t.sizes().equals(want))
        fail(file + ": tensor \"" + name + "\" has shape " + shape_str(t.sizes()) + ", the parameter " +
             shape_str(want));
    if (f32_only && t.scalar_type() != at::kFloat) fail(file + ": tensor \"" + name + "\" is not F32");
    if (!at::isFloatingType(t.scalar_type())) fail(file + ": tensor \"" + name + "\" is not floating point");
    return t;
}

// ----------------------------------------------------------------------------
// JSON helpers

struct Json {
    cJSON *j = nullptr;
    explicit Json(cJSON *p) : j(p) {}
    ~Json() { cJSON_Delete(j); }
    Json(const Json &) = delete;
    Json &operator=(const Json &) = delete;
};

cJSON *need(cJSON *parent, const char *key) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!c) throw Fail{SEGRL_ERR_INVALID, std::string(kStateFile) + ": \"" + key + "\" missing"};
    return c;
}

int64_t need_int(cJSON *parent, const char *key) {
    cJSON *c = need(parent, key);
    double v = cJSON_IsNumber(c) ? c->valuedouble : NAN;
    if (!(v == std::floor(v) && std::fabs(v) <= 9007199254740992.0))
        fail(std::string(kStateFile) + ": \"" + key + "\" is not an integer");
    return (int64_t)v;
}

std::string need_str(cJSON *parent, const char *key) {
    cJSON *c = need(parent, key);
    if (!cJSON_IsString(c)) fail(std::string(kStateFile) + ": \"" + key + "\" is not a string");
    return c->valuestring;
}

const char *schedule_name(int32_t k) {
    switch (k) {
    case SEGRL_LR_CONSTANT: return "constant";
    case SEGRL_LR_WARMUP_COSINE: return "warmup_cosine";
    case SEGRL_LR_WARMUP_CONSTANT: return "warmup_constant";
    default: return "?";
    }
}

std::string to_hex(const uint8_t *p, size_t n) {
    static const char *d = "0123456789abcdef";
    std::string s(2 * n, '0');
    for (size_t i = 0; i < n; i++) s[2 * i] = d[p[i] >> 4], s[2 * i + 1] = d[p[i] & 15];
    return s;
}

bool from_hex(const std::string &s, std::vector<uint8_t> *out) {
    if (s.size() % 2) return false;
    auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    out->resize(s.size() / 2);
    for (size_t i = 0; i < out->size(); i++) {
        int a = val(s[2 * i]), b = val(s[2 * i + 1]);
        if (a < 0 || b < 0) return false;
        (*out)[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

// The JSON's own checksum: the CRC-32 of the whole text with the 8 hex digits of the
// "state_crc32" value (the last occurrence of the key) replaced by "00000000". Returns the
// position of those digits, or npos.
size_t crc_digits_pos(const std::string &text) {
    std::string key = std::string("\"") + kCrcKey + "\"";
    size_t k = text.rfind(key);
    if (k == std::string::npos) return k;
    size_t q = text.find('"', k + key.size());
    if (q == std::string::npos || q + 9 >= text.size() || text[q + 9] != '"') return std::string::npos;
    return q + 1;
}

uint32_t self_crc(std::string text, size_t pos) {
    text.replace(pos, 8, "00000000");
    return crc32_update(0, (const unsigned char *)text.data(), text.size());
}

at::Generator cpu_generator() { return at::detail::getDefaultCPUGenerator(); }

// ----------------------------------------------------------------------------
// argument checks shared by save and load

void check_params(segrl_tensor *const *params, const char *const *names, int64_t n) {
    if (n < 0) fail("n: must be >= 0");
    if (n > 0 && !params) fail("params: is NULL");
    if (n > 0 && !names) fail("names: is NULL");
    std::unordered_set<std::string> seen;
    for (int64_t i = 0; i < n; i++) {
        if (!params[i] || !params[i]->t.defined()) fail("params[" + std::to_string(i) + "]: is NULL");
        if (!names[i] || !names[i][0]) fail("names[" + std::to_string(i) + "]: is NULL or empty");
        if (!seen.insert(names[i]).second)
            fail("names[" + std::to_string(i) + "]: \"" + names[i] + "\" is given twice");
    }
}

// ----------------------------------------------------------------------------
// save

void save(const std::string &root, segrl_tensor *const *params, const char *const *names, int64_t n,
          const segrl_optimizer *opt, int64_t step, uint64_t user_rng, const char *user_json) {
    check_params(params, names, n);
    if (step < 0) fail("step: must be >= 0");
    Json user(nullptr);
    if (user_json) {
        user.j = cJSON_Parse(user_json);
        if (!user.j) fail("user_json: is not valid JSON");
    }
    if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) fail_os("cannot create directory", root);

    const std::string final_name = step_dir_name(step);
    const std::string final_dir = root + "/" + final_name;
    const std::string tmp_dir = root + "/.tmp-" + final_name + "-" + std::to_string((long long)::getpid());
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    if (::mkdir(tmp_dir.c_str(), 0755) != 0) fail_os("cannot create directory", tmp_dir);
    try {
        at::NoGradGuard no_grad;
        // the tensors
        {
            StList w;
            for (int64_t i = 0; i < n; i++) w.add(names[i], params[i]->t);
            w.write(tmp_dir + "/" + kModelFile, "weights");
        }
        if (opt) {
            StList w;
            for (size_t i = 0; i < opt->params.size(); i++) {
                w.add("exp_avg/" + opt->names[i], opt->exp_avg[i]);
                w.add("exp_avg_sq/" + opt->names[i], opt->exp_avg_sq[i]);
                if (opt->master[i].defined()) w.add("master/" + opt->names[i], opt->master[i]);
            }
            w.write(tmp_dir + "/" + kOptimFile, "adamw-moments");
        }
        // the state
        Json state(cJSON_CreateObject());
        if (!state.j) throw std::bad_alloc();
        cJSON *s = state.j;
        cJSON_AddStringToObject(s, "format", "segrl-checkpoint");
        cJSON_AddNumberToObject(s, "version", 1);
        cJSON_AddNumberToObject(s, "step", (double)step);
        cJSON_AddNumberToObject(s, "params", (double)n);
        if (opt) {
            const segrl_adamw_config &c = opt->config;
            cJSON *o = cJSON_AddObjectToObject(s, "optimizer");
            cJSON_AddStringToObject(o, "type", "adamw");
            cJSON_AddNumberToObject(o, "step", (double)opt->steps);
            cJSON_AddNumberToObject(o, "params", (double)opt->params.size());
            cJSON_AddNumberToObject(o, "lr", c.lr);
            cJSON_AddNumberToObject(o, "next_lr", segrl_torch::lr_at(c.schedule, c.lr, opt->steps));
            cJSON_AddNumberToObject(o, "beta1", c.beta1);
            cJSON_AddNumberToObject(o, "beta2", c.beta2);
            cJSON_AddNumberToObject(o, "eps", c.eps);
            cJSON_AddNumberToObject(o, "weight_decay", c.weight_decay);
            cJSON_AddNumberToObject(o, "decay_1d", c.decay_1d);
            cJSON_AddNumberToObject(o, "max_grad_norm", c.max_grad_norm);
            cJSON_AddNumberToObject(o, "skip_nonfinite", c.skip_nonfinite);
            cJSON_AddNumberToObject(o, "master_weights", c.master_weights);
            cJSON *sc = cJSON_AddObjectToObject(o, "schedule");
            cJSON_AddStringToObject(sc, "kind", schedule_name(c.schedule.kind));
            cJSON_AddNumberToObject(sc, "warmup_steps", (double)c.schedule.warmup_steps);
            cJSON_AddNumberToObject(sc, "total_steps", (double)c.schedule.total_steps);
            cJSON_AddNumberToObject(sc, "min_ratio", c.schedule.min_ratio);
        } else {
            cJSON_AddNullToObject(s, "optimizer");
        }
        cJSON *rng = cJSON_AddObjectToObject(s, "rng");
        {
            at::Generator g = cpu_generator();
            at::Tensor gs;
            {
                std::lock_guard<std::mutex> lock(g.mutex());
                gs = g.get_state();
            }
            gs = gs.contiguous();
            cJSON_AddStringToObject(rng, "torch_cpu", to_hex(gs.data_ptr<uint8_t>(), (size_t)gs.numel()).c_str());
            cJSON_AddStringToObject(rng, "user", std::to_string((unsigned long long)user_rng).c_str());
        }
        if (user.j) {
            cJSON_AddItemToObject(s, "user", user.j);
            user.j = nullptr;
        }
        cJSON *files = cJSON_AddObjectToObject(s, "files");
        for (const char *f : {kModelFile, kOptimFile}) {
            if (f == kOptimFile && !opt) continue;
            uint32_t crc;
            uint64_t bytes;
            file_crc(tmp_dir + "/" + f, &crc, &bytes);
            cJSON *e = cJSON_AddObjectToObject(files, f);
            cJSON_AddNumberToObject(e, "bytes", (double)bytes);
            cJSON_AddStringToObject(e, "crc32", hex32(crc).c_str());
        }
        cJSON_AddStringToObject(s, kCrcKey, "00000000");
        char *printed = cJSON_Print(s);
        if (!printed) throw std::bad_alloc();
        std::string text(printed);
        cJSON_free(printed);
        text += "\n";
        size_t pos = crc_digits_pos(text);
        if (pos == std::string::npos) fail("internal: state checksum placeholder not found");
        text.replace(pos, 8, hex32(self_crc(text, pos)));
        write_file_atomic(tmp_dir + "/" + kStateFile, text);
        fsync_path(tmp_dir, true);

        // into place: a plain rename, or an atomic exchange with an older save of the same step
        if (fs::exists(final_dir, ec)) {
            if (::renameat2(AT_FDCWD, tmp_dir.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0)
                fail_os("cannot replace the existing checkpoint atomically", final_dir);
            fs::remove_all(tmp_dir, ec);  // now holds the older save
        } else if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
            fail_os("rename failed", final_dir);
        }
        fsync_path(root, true);
    } catch (...) {
        fs::remove_all(tmp_dir, ec);
        throw;
    }
    write_file_atomic(root + "/" + kLatest, final_name + "\n");
    fsync_path(root, true);
}

// ----------------------------------------------------------------------------
// load

void load(const std::string &path, segrl_tensor *const *params, const char *const *names, int64_t n,
          segrl_optimizer *opt, segrl_checkpoint_info *info) {
    check_params(params, names, n);
    std::error_code ec;
    std::string dir = path;
    std::string latest = read_latest(path);
    if (!latest.empty()) dir = path + "/" + latest;
    if (!fs::is_directory(dir, ec)) fail(dir + ": not a checkpoint directory");

    // 1. the state file and its own checksum
    const std::string state_path = dir + "/" + kStateFile;
    std::string text = read_file(state_path, (size_t)64 << 20);
    size_t pos = crc_digits_pos(text);
    if (pos == std::string::npos) fail(state_path + ": no \"state_crc32\" (truncated or not a segrl checkpoint)");
    uint32_t want = (uint32_t)std::strtoul(text.substr(pos, 8).c_str(), nullptr, 16);
    uint32_t got = self_crc(text, pos);
    if (want != got)
        fail(state_path + ": checksum mismatch (stored " + text.substr(pos, 8) + ", computed " + hex32(got) +
             "): the file is corrupted");
    Json state(cJSON_Parse(text.c_str()));
    if (!state.j || !cJSON_IsObject(state.j)) fail(state_path + ": not valid JSON");
    cJSON *s = state.j;
    if (need_str(s, "format") != "segrl-checkpoint") fail(state_path + ": format is not \"segrl-checkpoint\"");
    if (need_int(s, "version") != 1) fail(state_path + ": unsupported version");

    // 2. every file's size and CRC-32
    cJSON *files = need(s, "files");
    if (!cJSON_IsObject(files)) fail(state_path + ": \"files\" is not an object");
    cJSON *f;
    cJSON_ArrayForEach(f, files) {
        std::string fname = f->string ? f->string : "";
        if (fname != kModelFile && fname != kOptimFile) fail(state_path + ": unknown file \"" + fname + "\"");
        const std::string fp = dir + "/" + fname;
        uint64_t bytes_want = (uint64_t)need_int(f, "bytes");
        std::string crc_want = need_str(f, "crc32");
        uint32_t crc;
        uint64_t bytes;
        file_crc(fp, &crc, &bytes);
        if (bytes != bytes_want)
            fail(fp + ": size " + std::to_string(bytes) + " bytes, the state records " + std::to_string(bytes_want) +
                 ": the file is truncated or corrupted");
        if (hex32(crc) != crc_want)
            fail(fp + ": checksum mismatch (stored " + crc_want + ", computed " + hex32(crc) +
                 "): the file is corrupted");
    }
    if (!cJSON_GetObjectItemCaseSensitive(files, kModelFile)) fail(state_path + ": no model.safetensors listed");

    // 3. parameters: names and shapes
    StHandle model;
    const std::string model_path = dir + "/" + kModelFile;
    if (segrl_safetensors_open(model_path.c_str(), &model.h) != SEGRL_OK)
        throw Fail{SEGRL_ERR_INVALID, segrl_last_error()};
    std::vector<at::Tensor> src(n);
    for (int64_t i = 0; i < n; i++) src[i] = find_checked(model, model_path, names[i], params[i]->t.sizes(), false);

    // 4. optimizer: step, moments, masters
    StHandle optf;
    std::vector<at::Tensor> m_src, v_src, w_src;
    int64_t opt_step = -1;
    cJSON *oj = need(s, "optimizer");
    if (cJSON_IsObject(oj)) opt_step = need_int(oj, "step");
    if (opt) {
        if (!cJSON_IsObject(oj)) fail(state_path + ": no optimizer state saved, but opt was given");
        if (need_int(oj, "params") != (int64_t)opt->params.size())
            fail(state_path + ": the optimizer was saved with " + std::to_string(need_int(oj, "params")) +
                 " parameters, opt has " + std::to_string(opt->params.size()));
        if (opt_step < 0) fail(state_path + ": optimizer step is negative");
        const std::string op = dir + "/" + kOptimFile;
        if (!cJSON_GetObjectItemCaseSensitive(files, kOptimFile)) fail(state_path + ": no optimizer.safetensors listed");
        if (segrl_safetensors_open(op.c_str(), &optf.h) != SEGRL_OK) throw Fail{SEGRL_ERR_INVALID, segrl_last_error()};
        for (size_t i = 0; i < opt->params.size(); i++) {
            at::IntArrayRef shape = opt->params[i].sizes();
            m_src.push_back(find_checked(optf, op, "exp_avg/" + opt->names[i], shape, true));
            v_src.push_back(find_checked(optf, op, "exp_avg_sq/" + opt->names[i], shape, true));
            at::Tensor w;
            if (opt->master[i].defined() && segrl_safetensors_index(optf.h, ("master/" + opt->names[i]).c_str()) >= 0)
                w = find_checked(optf, op, "master/" + opt->names[i], shape, true);
            w_src.push_back(w);
        }
    }

    // 5. RNG states and the user's JSON
    cJSON *rng = need(s, "rng");
    std::vector<uint8_t> gen_state;
    if (!from_hex(need_str(rng, "torch_cpu"), &gen_state)) fail(state_path + ": rng.torch_cpu is not hex");
    at::Generator gen = cpu_generator();
    {
        std::lock_guard<std::mutex> lock(gen.mutex());
        if ((int64_t)gen_state.size() != gen.get_state().numel())
            fail(state_path + ": rng.torch_cpu has " + std::to_string(gen_state.size()) +
                 " bytes, this libtorch's CPU generator state has " + std::to_string(gen.get_state().numel()));
    }
    std::string user_rng_s = need_str(rng, "user");
    char *end = nullptr;
    errno = 0;
    unsigned long long user_rng = std::strtoull(user_rng_s.c_str(), &end, 10);
    if (errno || !end || *end || user_rng_s.empty()) fail(state_path + ": rng.user is not a 64-bit integer");
    int64_t step = need_int(s, "step");
    char *user_copy = nullptr;
    cJSON *uj = cJSON_GetObjectItemCaseSensitive(s, "user");
    if (uj && info) {
        char *p = cJSON_PrintUnformatted(uj);
        if (!p) throw std::bad_alloc();
        size_t len = std::strlen(p);
        user_copy = (char *)segrl_malloc(len + 1);
        if (!user_copy) {
            cJSON_free(p);
            throw std::bad_alloc();
        }
        std::memcpy(user_copy, p, len + 1);
        cJSON_free(p);
    }

    // 6. everything checked: write
    try {
        at::NoGradGuard no_grad;
        for (int64_t i = 0; i < n; i++) params[i]->t.copy_(src[i]);
        if (opt) {
            for (size_t i = 0; i < opt->params.size(); i++) {
                opt->exp_avg[i].copy_(m_src[i]);
                opt->exp_avg_sq[i].copy_(v_src[i]);
                if (opt->master[i].defined()) {
                    if (w_src[i].defined()) opt->master[i].copy_(w_src[i]);
                    else opt->master[i].copy_(opt->params[i]);
                }
            }
            opt->steps = opt_step;
        }
        at::Tensor gs = at::empty({(int64_t)gen_state.size()}, at::TensorOptions().dtype(at::kByte));
        std::memcpy(gs.data_ptr<uint8_t>(), gen_state.data(), gen_state.size());
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(gs);
    } catch (...) {
        segrl_free(user_copy);
        throw;
    }
    if (info) {
        info->step = step;
        info->optimizer_step = opt_step;
        info->user_rng = (uint64_t)user_rng;
        info->user_json = user_copy;
    }
}

// ----------------------------------------------------------------------------
// list / prune

std::vector<int64_t> list_steps(const std::string &root) {
    std::vector<int64_t> steps;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return steps;
    for (fs::directory_iterator it(root, ec), e; !ec && it != e; it.increment(ec)) {
        std::string name = it->path().filename().string();
        int64_t st = parse_step_name(name);
        if (st < 0 || !it->is_directory(ec)) continue;
        if (!fs::is_regular_file(it->path() / kStateFile, ec)) continue;
        steps.push_back(st);
    }
    if (ec) fail(root + ": cannot list: " + ec.message());
    std::sort(steps.begin(), steps.end());
    return steps;
}

}  // namespace

#define TRAIN_CATCH                                                                         \
    catch (const Fail &f) {                                                                 \
        return segrl_set_error(f.status, "%s: %s", segrl_torch_fn_, f.msg.c_str());         \
    }                                                                                       \
    SEGRL_TORCH_CATCH

extern "C" segrl_status segrl_checkpoint_save(const char *root, segrl_tensor *const *params,
                                              const char *const *names, int64_t n,
                                              const segrl_optimizer *opt, int64_t step,
                                              uint64_t user_rng, const char *user_json) {
    SEGRL_TORCH_TRY("segrl_checkpoint_save") {
        if (!root || !root[0]) fail("root: is NULL or empty");
        save(root, params, names, n, opt, step, user_rng, user_json);
        return SEGRL_OK;
    }
    TRAIN_CATCH
}

extern "C" segrl_status segrl_checkpoint_load(const char *path, segrl_tensor *const *params,
                                              const char *const *names, int64_t n,
                                              segrl_optimizer *opt, segrl_checkpoint_info *info) {
    SEGRL_TORCH_TRY("segrl_checkpoint_load") {
        if (!path || !path[0]) fail("path: is NULL or empty");
        load(path, params, names, n, opt, info);
        return SEGRL_OK;
    }
    TRAIN_CATCH
}

extern "C" segrl_status segrl_checkpoint_list(const char *root, int64_t *out_steps, int64_t capacity,
                                              int64_t *out_count) {
    SEGRL_TORCH_TRY("segrl_checkpoint_list") {
        if (!root || !root[0]) fail("root: is NULL or empty");
        if (capacity < 0) fail("capacity: must be >= 0");
        if (capacity > 0 && !out_steps) fail("out_steps: is NULL");
        if (!out_count) fail("out_count: is NULL");
        std::vector<int64_t> steps = list_steps(root);
        for (size_t i = 0; i < steps.size() && (int64_t)i < capacity; i++) out_steps[i] = steps[i];
        *out_count = (int64_t)steps.size();
        return SEGRL_OK;
    }
    TRAIN_CATCH
}

extern "C" segrl_status segrl_checkpoint_prune(const char *root, int64_t keep_last, int64_t *out_removed) {
    SEGRL_TORCH_TRY("segrl_checkpoint_prune") {
        if (!root || !root[0]) fail("root: is NULL or empty");
        if (keep_last < 1) fail("keep_last: must be >= 1");
        std::string r = root;
        std::vector<int64_t> steps = list_steps(r);
        std::string latest = read_latest(r);
        int64_t removed = 0;
        std::error_code ec;
        for (size_t i = 0; i + (size_t)keep_last < steps.size(); i++) {
            std::string name = step_dir_name(steps[i]);
            if (name == latest) continue;
            fs::remove_all(r + "/" + name, ec);
            if (ec) fail(r + "/" + name + ": cannot remove: " + ec.message());
            removed++;
        }
        // leftovers of interrupted saves
        for (fs::directory_iterator it(r, ec), e; !ec && it != e; it.increment(ec)) {
            std::string name = it->path().filename().string();
            if (name.compare(0, 10, ".tmp-step-") == 0) {
                std::error_code ec2;
                fs::remove_all(it->path(), ec2);
            }
        }
        if (out_removed) *out_removed = removed;
        return SEGRL_OK;
    }
    TRAIN_CATCH
}
