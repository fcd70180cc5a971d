"""The three pipelines of the `final:` announcement, exactly as written there."""

BUILD_DEPLOY_CLEANUP = """\
pipelines:
  default:
    - step:
        name: Build & Test
        script:
          - echo "This is the build step"
    - step:
        name: Deploy
        script:
          - echo "This is the deployment step"
    - final:
        name: Cleanup
        script:
          - echo "This is the final step"
"""

FAILING_BUILD = """\
pipelines:
  default:
    - step:
        name: Build & Test
        script:
          - echo "This is the build step"
          - exit 1 # simulate a failure
    - step:
        name: Deploy
        script:
          - echo "This is the deployment step"
    - final:
        name: Cleanup
        script:
          - echo "This is the final step"
"""

CUSTOM_RELEASE = """\
pipelines:
  custom:
    release:
      - step:
          name: Build & Test
          script:
            - ./scripts/build-and-test.sh
      - step:
          name: Package
          script:
            - ./scripts/package.sh
      - final:
          name: Post-release tasks
          script:
            - ./scripts/publish-metrics.sh
            - ./scripts/notify-release-channel.sh
"""
