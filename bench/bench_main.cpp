// main() of the Google Benchmark binaries: runs the benchmarks as usual, then
// prints each one's median time per item relative to its group's baseline.
//
// Naming: a benchmark "<group>/baseline" is the reference for every other
// benchmark "<group>/<variant>". The figure compared is the median (over
// repetitions) of the `items_per_second` counter, so both sides of a ratio
// must call SetItemsProcessed with the same notion of an item. Benchmarks
// without a baseline are listed with their time per item alone; any other
// counters follow each line.

#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  ratio_reporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      auto rate = run.counters.find("items_per_second");
      if (rate == run.counters.end() || rate->second.value <= 0) continue;
      const std::string name = run.run_name.function_name;
      auto& slot = results_[name];
      // A median outranks single repetitions; without repetitions the one run stands.
      if (median || !slot.median) {
        slot.rate = rate->second.value;
        slot.median = median;
        slot.others.clear();
        for (const auto& [counter, value] : run.counters) {
          if (counter != "items_per_second") slot.others += "  " + counter + "=" + format(value.value);
        }
      }
    }
  }

  void print_ratios() const {
    std::printf("\nratios: time per item relative to the group's baseline (median of the repetitions)\n");
    for (const auto& [name, e] : results_) {
      const auto cut = name.rfind('/');
      if (cut != std::string::npos && name.compare(cut + 1, std::string::npos, "baseline") == 0) continue;
      const double ns = 1e9 / e.rate;
      auto base = cut == std::string::npos ? results_.end() : results_.find(name.substr(0, cut) + "/baseline");
      if (base == results_.end()) {
        std::printf("  %-42s %10.1f ns/item  (no baseline)%s\n", name.c_str(), ns, e.others.c_str());
        continue;
      }
      const double base_ns = 1e9 / base->second.rate;
      std::printf("  %-42s %10.1f ns/item  vs baseline %10.1f ns/item  ratio %.3f%s\n", name.c_str(), ns, base_ns,
                  ns / base_ns, e.others.c_str());
    }
  }

 private:
  struct entry {
    double rate = 0;
    bool median = false;
    std::string others;  // the other counters, "  name=value" each
  };

  static std::string format(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
  }

  std::map<std::string, entry> results_;  // by name, so a group's lines stay together
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
