# Initial CMake cache for building llama-cpp-python the way promptkit needs it, used by the
# README's set-up commands: CMAKE_ARGS="-C $PWD/cmake/llama-portable.cmake".
#
# - GGML_NATIVE=OFF: llama.cpp otherwise compiles for -march=native, and the wheel dies with
#   SIGILL ("Illegal instruction") on any other CPU, or in a virtual machine that traps
#   instructions its CPU advertises (AMX). Off, x86 builds target x86-64-v3 (AVX2, FMA, F16C,
#   BMI2) and arm64 builds the baseline.
# - LLAVA_BUILD=OFF: the multimodal library (mtmd), which promptkit does not load.
# - llama.cpp's "common" library and its HTTP client are only used by llama.cpp's own tools,
#   not by the Python bindings, yet llama-cpp-python forces them on; they are more than half
#   of the compile time. llama-no-common.cmake turns them off inside llama.cpp's project.
set(GGML_NATIVE OFF CACHE BOOL "promptkit: portable build, no -march=native")
set(LLAVA_BUILD OFF CACHE BOOL "promptkit: no multimodal library")
set(CMAKE_PROJECT_llama.cpp_INCLUDE "${CMAKE_CURRENT_LIST_DIR}/llama-no-common.cmake"
    CACHE FILEPATH "promptkit: skip llama.cpp's common library")
