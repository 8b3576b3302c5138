"""Conan 2 recipe for jobpoll, a header-only C++20 library on standalone Asio or Boost.Asio.

    conan create . --build=missing                          # package it (tests off)
    conan create . --build=missing -o jobpoll/*:asio=boost  # the Boost.Asio variant

Consumers: `requires = "jobpoll/0.1.0"`, then with CMakeDeps
`find_package(jobpoll CONFIG REQUIRED)` and `jobpoll::jobpoll`. The option
asio ("standalone", the default, or "boost") chooses the backend: with
"boost" the targets are named as jobpoll's own CMake package names its Boost
variants (jobpoll::jobpoll-boost-asio, jobpoll::curl-boost-asio, ...), they
define JOBPOLL_USE_BOOST_ASIO and require Boost's headers. The options
with_json, with_curl, with_batch and with_sqlite (on by default) add the leaf
targets jobpoll::json (nlohmann_json), jobpoll::curl (libcurl),
jobpoll::batch (batches of jobs: the runner, records, audit log; on
nlohmann_json) and jobpoll::sqlite (the embedded batch store, on
jobpoll::batch and SQLite 3); with_redis and with_postgres (off by default)
add jobpoll::redis (the rate limiter shared through Redis, on hiredis) and
jobpoll::postgres (the batch store several runners share, on jobpoll::batch
and libpq). A store brings jobpoll::batch even with with_batch off.
"""
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load, rmdir

required_conan_version = ">=2.0"


class JobpollConan(ConanFile):
    name = "jobpoll"
    description = ("Submit a job, poll it until it is done, fetch the result: "
                   "a header-only C++20 library on standalone Asio or Boost.Asio")
    license = "BSL-1.0"
    topics = ("asio", "coroutines", "polling", "rate-limiting", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"asio": ["standalone", "boost"], "with_json": [True, False], "with_curl": [True, False], "with_batch": [True, False],
               "with_sqlite": [True, False], "with_redis": [True, False], "with_postgres": [True, False]}
    # The shared pieces need servers a user runs: off unless asked for.
    default_options = {"asio": "standalone", "with_json": True, "with_curl": True, "with_batch": True, "with_sqlite": True,
                       "with_redis": False, "with_postgres": False}
    exports_sources = "CMakeLists.txt", "cmake/*", "include/*", "LICENSE"
    no_copy_source = True

    def set_version(self):
        # One source of truth: project(jobpoll VERSION x.y.z) in CMakeLists.txt.
        if self.version:
            return
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        self.version = re.search(r"project\(jobpoll\s+VERSION\s+([0-9.]+)", cmakelists).group(1)

    def layout(self):
        cmake_layout(self, src_folder=".")

    def requirements(self):
        # Public headers include Asio's: consumers get its headers and defines.
        if self.options.asio == "boost":
            # 1.81: the oldest Boost jobpoll is tested with (cmake/JobpollBoostAsio.cmake).
            self.requires("boost/[>=1.81 <2]", transitive_headers=True)
        else:
            self.requires("asio/1.22.1", transitive_headers=True)
        if self._with_batch or self.options.with_json:
            # Batch records are JSON: jobpoll::batch (and the stores on it) need nlohmann_json too.
            self.requires("nlohmann_json/3.11.2", transitive_headers=True)
        if self.options.with_curl:
            self.requires("libcurl/[>=7.80 <9]", transitive_headers=True)
        if self.options.with_sqlite:
            # 3.24: UPSERT and SQLITE_PREPARE_PERSISTENT (as CMakeLists.txt asks).
            self.requires("sqlite3/[>=3.24 <4]", transitive_headers=True)
        if self.options.with_redis:
            self.requires("hiredis/[>=0.14 <2]", transitive_headers=True)
        if self.options.with_postgres:
            self.requires("libpq/[>=12 <18]", transitive_headers=True)

    @property
    def _with_batch(self):
        # The stores build on jobpoll::batch: either brings it.
        return bool(self.options.with_batch or self.options.with_sqlite or self.options.with_postgres)

    def configure(self):
        if self.options.asio == "boost":
            self.options["boost"].header_only = True

    def package_id(self):
        # Header-only: the same files whatever the settings; the backend
        # changes only the usage requirements (package_info).
        asio = self.info.options.asio
        self.info.clear()
        self.info.options.asio = asio

    def validate(self):
        check_min_cppstd(self, 20)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["JOBPOLL_BUILD_TESTS"] = False
        tc.cache_variables["JOBPOLL_BUILD_EXAMPLES"] = False
        tc.cache_variables["JOBPOLL_BUILD_BENCH"] = False
        tc.cache_variables["JOBPOLL_BUILD_TOOLS"] = False
        tc.cache_variables["JOBPOLL_INSTALL"] = True
        if self.options.asio == "boost":
            # cmake/JobpollBoostAsio.cmake finds Boost through its CMake package.
            CMakeDeps(self).generate()
        else:
            # cmake/JobpollAsio.cmake looks for asio.hpp; point it at Conan's Asio.
            tc.cache_variables["JOBPOLL_ASIO_INCLUDE_DIR"] = \
                self.dependencies["asio"].cpp_info.includedirs[0].replace("\\", "/")
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder,
             dst=os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()
        # Conan's CMakeDeps writes the consumers' config files from package_info();
        # the CMake package files and the doc copy of the license are not needed.
        rmdir(self, os.path.join(self.package_folder, "share"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "jobpoll")
        boost = self.options.asio == "boost"
        # Target names as jobpoll's own CMake package gives them (CMakeLists.txt).
        suffix = "-boost-asio" if boost else ""

        def component(name, target, requires):
            c = self.cpp_info.components[name]
            c.set_property("cmake_target_name", f"jobpoll::{target}{suffix}")
            c.bindirs = []
            c.libdirs = []
            c.requires = requires
            return c

        core = component("core", "jobpoll", ["boost::headers"] if boost else ["asio::asio"])
        if boost:
            core.defines.append("JOBPOLL_USE_BOOST_ASIO")
        elif self.settings.get_safe("compiler") == "clang":
            # The same usage requirements as the CMake package (cmake/JobpollAsio.cmake):
            # clang 14 with libstdc++ only enables standalone Asio 1.22's coroutines
            # when told to (Boost 1.81's Asio enables them itself).
            core.defines.append("ASIO_HAS_CO_AWAIT=1")
        if self.options.with_json:
            component("json", "json", ["core", "nlohmann_json::nlohmann_json"])
        if self.options.with_curl:
            component("curl", "curl", ["core", "libcurl::libcurl"])
        if self._with_batch:
            component("batch", "batch", ["core", "nlohmann_json::nlohmann_json"])
        if self.options.with_sqlite:
            # sqlite3's CMake target is SQLite::SQLite3 (find_package(SQLite3)).
            component("sqlite", "sqlite", ["batch", "sqlite3::sqlite3"])
        if self.options.with_redis:
            component("redis", "redis", ["core", "hiredis::hiredis"])
        if self.options.with_postgres:
            component("postgres", "postgres", ["batch", "libpq::libpq"])
