# FDCSIM_GIT_COMMIT: the source's commit at configure time, for the provenance of measurements
# (fdcsim profile, fdcsim layer-check): "<sha>", "<sha>-dirty" with uncommitted changes to tracked
# files, "<commit>-export" for a copy without history that names its commit in FDCSIM_SOURCE_COMMIT,
# else "unknown".
find_program(FDCSIM_GIT git)
set(FDCSIM_GIT_COMMIT "unknown")
if(FDCSIM_GIT)
  # --verify -q: nothing (not the word "HEAD") when the copy has no history.
  execute_process(COMMAND ${FDCSIM_GIT} rev-parse --verify -q HEAD WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE FDCSIM_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  execute_process(COMMAND ${FDCSIM_GIT} status --porcelain --untracked-files=no WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE fdcsim_git_dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT FDCSIM_GIT_COMMIT)
    set(FDCSIM_GIT_COMMIT "unknown")
  elseif(fdcsim_git_dirty)
    string(APPEND FDCSIM_GIT_COMMIT "-dirty")
  endif()
endif()
if(FDCSIM_GIT_COMMIT STREQUAL "unknown" AND DEFINED ENV{FDCSIM_SOURCE_COMMIT})
  # A copy without history (an exported tree) may name the commit it was exported from.
  set(FDCSIM_GIT_COMMIT "$ENV{FDCSIM_SOURCE_COMMIT}-export")
endif()
