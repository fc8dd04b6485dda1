# Included by CMake right after llama.cpp's project() (see llama-portable.cmake): a normal
# variable shadows the cache entry llama-cpp-python forces on, so llama.cpp's common library,
# its tools and its HTTP client are neither built nor installed.
set(LLAMA_BUILD_COMMON OFF)
