// Planning a cluster's deployments: arch selection, labels, merged
// parameters with command-line overrides, subsystems kept inside their
// parent, and deployment.meta as ybd writes it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deploy/plan.hpp"

namespace gang {
namespace {

Definitions two_systems() {
  Definitions defs;
  defs.systems.push_back({"base-x86_64", "systems/base-x86_64.morph", "x86_64", {}, {}, {}});
  defs.systems.push_back({"base-armv7", "systems/base-armv7.morph", "armv7lhf", {}, {}, {}});
  defs.systems.push_back({"initramfs", "systems/initramfs.morph", "x86_64", {}, {}, {}});
  return defs;
}

ClusterDef cluster() {
  ClusterDef c;
  c.name = "release";
  c.path = "clusters/release.morph";
  ClusterSystem x86;
  x86.system = 0;
  x86.deploy_defaults = {{"HOSTNAME", "default-host"}, {"type", "extensions/rawdisk"}};
  x86.deploy = {{"x86-tar", {{"type", "extensions/tar"}, {"location", "/out/x86.tar"}}},
                {"x86-root", {{"type", "sysroot"}, {"location", "/out/root"}, {"HOSTNAME", "own"}}}};
  ClusterSystem initramfs;
  initramfs.system = 2;
  initramfs.deploy = {{"initramfs", {{"type", "initramfs"}, {"location", "/boot/initramfs.gz"}}}};
  x86.subsystems = {initramfs};
  ClusterSystem arm;
  arm.system = 1;
  arm.deploy = {{"arm-tar", {{"type", "tar"}, {"location", "/out/arm.tar"}}}};
  c.systems = {x86, arm};
  return c;
}

TEST(DeployPlan, OnlyTheRequestedArchWithMergedParametersAndSubsystems) {
  auto defs = two_systems();
  auto plan = plan_deployments(defs, cluster(), "x86_64", {}, {});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->size(), 2u);
  const DeploymentStep& tar = (*plan)[0];
  EXPECT_EQ(tar.label, "x86-tar");
  EXPECT_EQ(tar.type, "tar");  // the basename of extensions/tar
  EXPECT_EQ(tar.location, "/out/x86.tar");
  EXPECT_EQ(tar.parameters.at("HOSTNAME"), "default-host");  // from deploy-defaults
  EXPECT_EQ((*plan)[1].parameters.at("HOSTNAME"), "own");     // the deployment's own wins
  ASSERT_EQ(tar.subsystems.size(), 1u);
  EXPECT_EQ(tar.subsystems[0].location, "boot/initramfs.gz");  // inside the parent's tree
  EXPECT_EQ(tar.subsystems[0].system, 2u);
}

TEST(DeployPlan, LabelsSelectAcrossArchesAndOverridesWin) {
  auto defs = two_systems();
  auto o = parse_override("arm-tar.HOSTNAME=a b;$(x)=y");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->key, "HOSTNAME");
  EXPECT_EQ(o->value, "a b;$(x)=y");
  auto plan = plan_deployments(defs, cluster(), "x86_64", {"arm-tar"}, {*o});
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_EQ(plan->size(), 1u);
  EXPECT_EQ((*plan)[0].parameters.at("HOSTNAME"), "a b;$(x)=y");

  auto by_system = plan_deployments(defs, cluster(), "x86_64", {"base-x86_64"}, {});
  ASSERT_TRUE(by_system);
  EXPECT_EQ(by_system->size(), 2u);  // both deployments of that system
  auto unknown = plan_deployments(defs, cluster(), "x86_64", {"nope"}, {});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().to_string().find("no deployment labelled nope"), std::string::npos);
  auto stray = plan_deployments(defs, cluster(), "x86_64", {}, {*o});  // arm-tar is not deployed
  ASSERT_FALSE(stray);
  EXPECT_FALSE(parse_override("HOSTNAME=x"));
  EXPECT_FALSE(parse_override("a.=x"));
}

TEST(DeployPlan, ASubsystemCannotLeaveItsParentAndATypeIsRequired) {
  auto defs = two_systems();
  auto c = cluster();
  c.systems[0].subsystems[0].deploy[0].settings["location"] = "/boot/../../etc/passwd";
  auto escaped = plan_deployments(defs, c, "x86_64", {}, {});
  ASSERT_FALSE(escaped);
  EXPECT_NE(escaped.error().to_string().find("outside its parent"), std::string::npos);
  auto d = cluster();
  d.systems[1].deploy[0].settings.erase("type");
  auto untyped = plan_deployments(defs, d, "armv7lhf", {}, {});
  ASSERT_FALSE(untyped);
  EXPECT_NE(untyped.error().to_string().find("has no type"), std::string::npos);
}

TEST(DeployPlan, DeploymentMetaIsYbdsShape) {
  std::string meta = deployment_meta({{"location", "/out/x.tar"}, {"HOSTNAME", "h\"q"}, {"type", "tar"}});
  EXPECT_EQ(meta,
            "{\n    \"configuration\": {\n        \"HOSTNAME\": \"h\\\"q\",\n"
            "        \"location\": \"/out/x.tar\",\n        \"type\": \"tar\"\n    }\n}");
  EXPECT_EQ(nlohmann::json::parse(meta)["configuration"]["HOSTNAME"], "h\"q");
}

}  // namespace
}  // namespace gang
