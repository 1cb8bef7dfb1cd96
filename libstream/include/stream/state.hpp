#pragma once

// Keyed state and timers of keyed process functions. A state handle reads
// and writes the value of the key of the record being processed (or of the
// timer firing); the same code runs on the memory and the LevelDB backend.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <typeindex>
#include <unordered_set>
#include <utility>
#include <vector>

#include "stream/detail/side_outputs.hpp"
#include "stream/event_time.hpp"
#include "stream/key_groups.hpp"
#include "stream/runtime/batch.hpp"
#include "stream/state/tables.hpp"

namespace stream {

/// Time-to-live of a state's values (processing time). Expired values are
/// never returned and are removed when next touched.
struct state_ttl {
  enum class update : std::uint8_t {
    on_create_and_write,  ///< Writes restart the clock.
    on_read_and_write,    ///< Reads restart it too.
  };
  std::chrono::milliseconds ttl{0};  ///< 0: values never expire.
  update update_type = update::on_create_and_write;
};

/// Which clock a timer follows.
enum class time_domain : std::uint8_t { event_time, processing_time };

namespace detail {

/// One state of an operator, seen through the current key. Values are
/// stored with their expiry time (0: none).
template <class X>
class state_cell {
 public:
  virtual ~state_cell() = default;
  /// The live value of the current key, or null.
  virtual const X* get() = 0;
  /// The value of the current key for modification; reset to `X{}` (and
  /// `created` set) when absent or expired.
  virtual X& mutate(bool& created) = 0;
  virtual void clear() = 0;
};

/// The key a keyed operator is processing, shared by its state cells.
template <class K>
struct key_scope {
  const K* key = nullptr;
  key_group kg = 0;
};

template <class K, class X>
class keyed_cell final : public state_cell<X> {
 public:
  using stored = std::pair<X, std::int64_t>;

  keyed_cell(std::unique_ptr<state::table<K, state::void_namespace, stored>> t,
             const key_scope<K>* scope, state_ttl ttl,
             const std::function<std::int64_t()>* clock)
      : table_(std::move(t)), scope_(scope), ttl_(ttl), clock_(clock) {}

  const X* get() override {
    const auto* s = table_->find(scope_->kg, *scope_->key, {});
    if (s == nullptr) return nullptr;
    if (ttl_.ttl.count() == 0) return &s->first;
    auto now = (*clock_)();
    if (s->second <= now) {
      table_->erase(scope_->kg, *scope_->key, {});
      return nullptr;
    }
    if (ttl_.update_type == state_ttl::update::on_read_and_write) {
      bool created = false;
      auto& m = table_->upsert(scope_->kg, *scope_->key, {}, created);
      m.second = now + ttl_.ttl.count();
      return &m.first;
    }
    return &s->first;
  }

  X& mutate(bool& created) override {
    auto& s = table_->upsert(scope_->kg, *scope_->key, {}, created);
    if (ttl_.ttl.count() > 0) {
      auto now = (*clock_)();
      if (!created && s.second <= now) {
        s.first = X{};
        created = true;
      }
      s.second = now + ttl_.ttl.count();
    }
    return s.first;
  }

  void clear() override { table_->erase(scope_->kg, *scope_->key, {}); }

 private:
  std::unique_ptr<state::table<K, state::void_namespace, stored>> table_;
  const key_scope<K>* scope_;
  state_ttl ttl_;
  const std::function<std::int64_t()>* clock_;
};

}  // namespace detail

/// One value per key.
template <class V>
class value_state {
 public:
  value_state() = default;
  explicit value_state(detail::state_cell<V>* cell) : cell_(cell) {}

  /// The value of the current key, if any.
  std::optional<V> value() const {
    const V* v = cell_->get();
    return v == nullptr ? std::nullopt : std::optional<V>{*v};
  }
  void update(V value) {
    bool created = false;
    cell_->mutate(created) = std::move(value);
  }
  void clear() { cell_->clear(); }

 private:
  detail::state_cell<V>* cell_ = nullptr;
};

/// A list of values per key.
template <class V>
class list_state {
 public:
  list_state() = default;
  explicit list_state(detail::state_cell<std::vector<V>>* cell) : cell_(cell) {}

  /// The values of the current key in insertion order (empty when none).
  std::vector<V> get() const {
    const auto* v = cell_->get();
    return v == nullptr ? std::vector<V>{} : *v;
  }
  void add(V value) {
    bool created = false;
    cell_->mutate(created).push_back(std::move(value));
  }
  void add_all(const std::vector<V>& values) {
    bool created = false;
    auto& list = cell_->mutate(created);
    list.insert(list.end(), values.begin(), values.end());
  }
  /// Replaces the list; an empty list clears the key.
  void update(std::vector<V> values) {
    if (values.empty()) return clear();
    bool created = false;
    cell_->mutate(created) = std::move(values);
  }
  void clear() { cell_->clear(); }

 private:
  detail::state_cell<std::vector<V>>* cell_ = nullptr;
};

/// A map per key, kept sorted by user key.
template <class UK, class UV>
class map_state {
 public:
  using entries_type = std::vector<std::pair<UK, UV>>;

  map_state() = default;
  explicit map_state(detail::state_cell<entries_type>* cell) : cell_(cell) {}

  std::optional<UV> get(const UK& k) const {
    const auto* m = cell_->get();
    if (m == nullptr) return std::nullopt;
    auto it = lower(*m, k);
    if (it == m->end() || it->first != k) return std::nullopt;
    return it->second;
  }
  bool contains(const UK& k) const { return get(k).has_value(); }
  void put(UK k, UV v) {
    bool created = false;
    auto& m = cell_->mutate(created);
    auto it = lower(m, k);
    if (it != m.end() && it->first == k)
      it->second = std::move(v);
    else
      m.emplace(it, std::move(k), std::move(v));
  }
  void remove(const UK& k) {
    if (cell_->get() == nullptr) return;
    bool created = false;
    auto& m = cell_->mutate(created);
    auto it = lower(m, k);
    if (it != m.end() && it->first == k) m.erase(it);
    if (m.empty()) cell_->clear();
  }
  /// Calls fn(const UK&, const UV&) for every entry of the current key in
  /// key order, without copying them. `fn` must not modify the state.
  template <class F>
  void for_each(F&& fn) const {
    if (const auto* m = cell_->get()) {
      for (const auto& [k, v] : *m) fn(k, v);
    }
  }

  /// Calls fn(UV&) on the value of `k` in place, default-constructed when
  /// absent.
  template <class F>
  void update(const UK& k, F&& fn) {
    bool created = false;
    auto& m = cell_->mutate(created);
    auto it = lower(m, k);
    if (it == m.end() || it->first != k) it = m.emplace(it, k, UV{});
    fn(it->second);
  }

  /// Every entry of the current key, sorted by user key (a copy).
  entries_type entries() const {
    const auto* m = cell_->get();
    return m == nullptr ? entries_type{} : *m;
  }
  bool empty() const {
    const auto* m = cell_->get();
    return m == nullptr || m->empty();
  }
  void clear() { cell_->clear(); }

 private:
  template <class M>
  static auto lower(M& m, const UK& k) {
    return std::lower_bound(
        m.begin(), m.end(), k,
        [](const auto& e, const UK& key) { return e.first < key; });
  }

  detail::state_cell<entries_type>* cell_ = nullptr;
};

/// A value per key that `add` folds with a reduce function.
template <class V>
class reducing_state {
 public:
  using reduce_fn = std::function<V(const V&, const V&)>;

  reducing_state() = default;
  reducing_state(detail::state_cell<V>* cell, std::shared_ptr<reduce_fn> fn)
      : cell_(cell), fn_(std::move(fn)) {}

  std::optional<V> get() const {
    const V* v = cell_->get();
    return v == nullptr ? std::nullopt : std::optional<V>{*v};
  }
  void add(const V& value) {
    bool created = false;
    auto& acc = cell_->mutate(created);
    acc = created ? value : (*fn_)(acc, value);
  }
  void clear() { cell_->clear(); }

 private:
  detail::state_cell<V>* cell_ = nullptr;
  std::shared_ptr<reduce_fn> fn_;
};

/// An accumulator per key: `add` folds inputs in, `get` returns the result.
template <class In, class Acc, class Out>
class aggregating_state {
 public:
  struct functions {
    Acc init;
    std::function<void(Acc&, const In&)> add;
    std::function<Out(const Acc&)> result;
  };

  aggregating_state() = default;
  aggregating_state(detail::state_cell<Acc>* cell,
                    std::shared_ptr<const functions> fns)
      : cell_(cell), fns_(std::move(fns)) {}

  std::optional<Out> get() const {
    const Acc* acc = cell_->get();
    if (acc == nullptr) return std::nullopt;
    return fns_->result(*acc);
  }
  void add(const In& value) {
    bool created = false;
    auto& acc = cell_->mutate(created);
    if (created) acc = fns_->init;
    fns_->add(acc, value);
  }
  void clear() { cell_->clear(); }

 private:
  detail::state_cell<Acc>* cell_ = nullptr;
  std::shared_ptr<const functions> fns_;
};

/// Timers of one keyed operator instance: (time, key, namespace), at most
/// one per distinct triple, fired in time order (registration order among
/// equal times). Kept in memory with either backend.
template <class K, class N = state::void_namespace>
class timer_queue {
 public:
  struct timer {
    std::int64_t time = 0;
    key_group kg = 0;
    K key{};
    N ns{};
    friend bool operator==(const timer&, const timer&) = default;
  };

  /// Adds a timer; false when the same one is already registered.
  bool add(std::int64_t time, key_group kg, const K& key, const N& ns = {}) {
    timer t{time, kg, key, ns};
    if (!live_.insert(t).second) return false;
    forget_consumed_before(time);
    by_time_[time].push_back(std::move(t));
    return true;
  }

  /// Removes a timer if registered.
  void remove(std::int64_t time, key_group kg, const K& key, const N& ns = {}) {
    live_.erase(timer{time, kg, key, ns});
  }

  /// Takes the earliest timer with time <= `up_to`; false when none.
  bool pop(std::int64_t up_to, timer& out) {
    while (!by_time_.empty()) {
      auto it = by_time_.begin();
      if (it->first > up_to) return false;
      auto& list = it->second;
      while (next_ < list.size()) {
        auto& t = list[next_++];
        if (live_.erase(t) == 0) continue;  // deleted earlier
        out = std::move(t);
        return true;
      }
      by_time_.erase(it);
      next_ = 0;
    }
    return false;
  }

  /// Time of the earliest live timer, or max_watermark when none.
  std::int64_t next_time() const {
    return by_time_.empty() ? runtime::max_watermark : by_time_.begin()->first;
  }

  std::size_t size() const noexcept { return live_.size(); }

  /// Checkpoint: adds every live timer to `out` as state `name` (entry key:
  /// key and namespace; value: time).
  void snapshot_to(checkpoint::snapshot_builder& out,
                   std::string_view name) const {
    auto index = out.state_index(name);
    for (const auto& t : live_) out.add_entry(index, t.kg, t.key, t.ns, t.time);
  }

  /// Restore: registers the timers saved as state `name` in `in`.
  status restore(const checkpoint::restored_state& in, std::string_view name) {
    status failed;
    auto st = in.for_each([&](const std::string& state, key_group kg,
                              std::string_view key, std::string_view value) {
      if (state != name || !failed.ok()) return;
      timer t;
      t.kg = kg;
      failed = state::decode_entry_key(key, 0, t.key, t.ns);
      if (failed.ok()) failed = checkpoint::decode_all(value, t.time);
      if (failed.ok()) add(t.time, t.kg, t.key, t.ns);
    });
    return st.ok() ? failed : st;
  }

 private:
  /// A timer earlier than the list being consumed (registered while timers
  /// fire) starts a new earliest list: drop the consumed prefix of the old
  /// one first, so that `next_` counts in the right list.
  void forget_consumed_before(std::int64_t time) {
    if (next_ == 0 || by_time_.empty() || time >= by_time_.begin()->first)
      return;
    auto& list = by_time_.begin()->second;
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(next_));
    next_ = 0;
  }

  struct timer_hash {
    std::size_t operator()(const timer& t) const {
      return static_cast<std::size_t>(
          hash_key(t.key) ^ state::namespace_hash(t.ns) ^
          static_cast<std::uint64_t>(t.time) * 0xC2B2AE3D27D4EB4FULL);
    }
  };

  std::map<std::int64_t, std::vector<timer>> by_time_;
  std::size_t next_ = 0;  ///< Consumed prefix of the earliest list.
  std::unordered_set<timer, timer_hash> live_;
};

/// What a keyed process function sees: the current key, time, its states,
/// its timers and side outputs. Valid for the lifetime of the operator.
template <class K>
class keyed_context {
 public:
  using clock_fn = std::function<std::int64_t()>;

  /// `clock` returns processing time in ms (tests pass a fake one).
  explicit keyed_context(state::keyed_backend& backend,
                         clock_fn clock = processing_time_now)
      : backend_(&backend), clock_(std::move(clock)) {}

  keyed_context(const keyed_context&) = delete;
  keyed_context& operator=(const keyed_context&) = delete;

  // -- the current key and time ---------------------------------------------

  const K& current_key() const { return *scope_.key; }
  key_group current_key_group() const noexcept { return scope_.kg; }
  /// Event time of the record being processed or of the timer firing.
  std::int64_t timestamp() const noexcept { return timestamp_; }
  std::int64_t current_watermark() const noexcept { return watermark_; }
  std::int64_t current_processing_time() const { return clock_(); }
  /// Set while `on_timer` runs.
  time_domain timer_domain() const noexcept { return domain_; }

  // -- timers (of the current key) ------------------------------------------

  void register_event_time_timer(std::int64_t time) {
    event_timers_.add(time, scope_.kg, *scope_.key);
  }
  void delete_event_time_timer(std::int64_t time) {
    event_timers_.remove(time, scope_.kg, *scope_.key);
  }
  void register_processing_time_timer(std::int64_t time) {
    processing_timers_.add(time, scope_.kg, *scope_.key);
  }
  void delete_processing_time_timer(std::int64_t time) {
    processing_timers_.remove(time, scope_.kg, *scope_.key);
  }

  // -- states (declare once, e.g. in open(); asking again returns the same) --

  template <class V>
  value_state<V> get_value_state(const std::string& name, state_ttl ttl = {}) {
    return value_state<V>{cell<V>(name, ttl)};
  }
  template <class V>
  list_state<V> get_list_state(const std::string& name, state_ttl ttl = {}) {
    return list_state<V>{cell<std::vector<V>>(name, ttl)};
  }
  template <class UK, class UV>
  map_state<UK, UV> get_map_state(const std::string& name, state_ttl ttl = {}) {
    return map_state<UK, UV>{
        cell<typename map_state<UK, UV>::entries_type>(name, ttl)};
  }
  template <class V, class F>
  reducing_state<V> get_reducing_state(const std::string& name, F fn,
                                       state_ttl ttl = {}) {
    return reducing_state<V>{
        cell<V>(name, ttl),
        std::make_shared<typename reducing_state<V>::reduce_fn>(std::move(fn))};
  }
  template <class In, class Acc, class Out, class Add, class Result>
  aggregating_state<In, Acc, Out> get_aggregating_state(const std::string& name,
                                                        Acc init, Add add,
                                                        Result result,
                                                        state_ttl ttl = {}) {
    using fns = typename aggregating_state<In, Acc, Out>::functions;
    return aggregating_state<In, Acc, Out>{
        cell<Acc>(name, ttl),
        std::make_shared<const fns>(
            fns{std::move(init), std::move(add), std::move(result)})};
  }

  // -- side outputs -----------------------------------------------------------

  /// Emits `value` to side output `tag` (dropped when nobody reads it).
  template <class U>
  void output(const output_tag<U>& tag, U value) {
    if (sides_ != nullptr) sides_->emit(tag.name, std::move(value));
  }

  // -- used by the operator --------------------------------------------------

  void set_side_outputs(detail::side_output_set* sides) noexcept {
    sides_ = sides;
  }
  void set_key(const K& key, key_group kg) {
    scope_.key = &key;
    scope_.kg = kg;
  }
  void set_timestamp(std::int64_t ts) noexcept { timestamp_ = ts; }
  void set_watermark(std::int64_t wm) noexcept { watermark_ = wm; }
  void set_timer_domain(time_domain d) noexcept { domain_ = d; }
  timer_queue<K>& event_timers() noexcept { return event_timers_; }
  timer_queue<K>& processing_timers() noexcept { return processing_timers_; }
  std::int64_t now() const { return clock_(); }

 private:
  struct named_cell {
    std::string name;
    std::type_index type;
    std::shared_ptr<void> cell;  ///< A keyed_cell<K, X>.
  };

  template <class X>
  detail::state_cell<X>* cell(const std::string& name, state_ttl ttl) {
    for (const auto& c : cells_) {
      if (c.name != name) continue;
      if (c.type != typeid(X))
        throw state::state_error{"keyed state '" + name +
                                 "' is asked for with two different types"};
      return static_cast<detail::keyed_cell<K, X>*>(c.cell.get());
    }
    using stored = typename detail::keyed_cell<K, X>::stored;
    auto table = backend_->make_table<K, state::void_namespace, stored>(name);
    auto c = std::make_shared<detail::keyed_cell<K, X>>(std::move(table),
                                                        &scope_, ttl, &clock_);
    cells_.push_back({name, typeid(X), c});
    return c.get();
  }

  state::keyed_backend* backend_;
  clock_fn clock_;
  detail::key_scope<K> scope_;
  std::int64_t timestamp_ = runtime::min_watermark;
  std::int64_t watermark_ = runtime::min_watermark;
  time_domain domain_ = time_domain::event_time;
  timer_queue<K> event_timers_;
  timer_queue<K> processing_timers_;
  std::vector<named_cell> cells_;
  detail::side_output_set* sides_ = nullptr;
};

}  // namespace stream
